"""The ``mmcv`` backend: mmcv 1.x configs on rt3d-tune's own runner (``rt3d_tune.runner``).

``backend`` (:class:`~rt3d_tune.backends.mmcv.backend.MmcvBackend`, the adapter),
``report_hook`` (the runner's evaluations into the trial's ``Reporter``), ``probe`` (the
runner's steps for the cool-down probe core),
``schedule`` (``lr_config``/``momentum_config`` scaled to a trial's budget, built by the
runner's own hooks), ``simulate`` (the LR/momentum curve stepped through those hooks),
``validate`` (what ``rt3d-tune validate`` builds of a trial), ``trial`` (one rank of a
trial: the runner with the report hook), ``trial_loggers`` (MLflow / W&B run names),
``mmengine_export`` (the config in mmengine spelling, for ``best/best_mmengine.py``).
"""
