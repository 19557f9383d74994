"""The Ray side of a search: Tuner wiring, the trial, callbacks, schedulers, status line.

``tuner.run_search`` starts (or joins) Ray through ``ray_session``, builds the Tune
scheduler (``schedulers``) and the Optuna searcher from a parsed
:class:`rt3d_tune.space.SearchSpace`, runs ``trainable.train_trial`` for each trial,
records every report (``callbacks``) and prints one status line (``status``). Trials
log to their own MLflow / W&B runs (``trial_loggers``). The space itself lives in
:mod:`rt3d_tune.space`; the run directory's files in :mod:`rt3d_tune.results`.

Importing this package imports neither Ray nor torch; its modules do, when imported.
"""
