"""The ``mmengine`` backend: OpenMMLab 2.x configs on mmengine's own Runner.

``backend`` (:class:`~rt3d_tune.backends.mmengine.backend.MmengineBackend`, the adapter);
``dialect`` tells an mmengine config from an mmcv 1.x one and loads it with mmengine's
``Config`` (pure apart from that import); ``schedule`` scales ``param_scheduler`` to a
trial's budget and ``simulate`` steps mmengine's own schedulers; ``start`` builds the
Runner as a trial starts it, and ``validate`` checks a trial config that way; ``trial``
starts one rank of a trial with ``hooks.MMTuneReportHook``, which reports each
validation through the trial's reporter; ``probe`` is the cool-down probe on mmengine's
Runner; ``train`` is ``rt3d-tune train`` of an mmengine config. mmengine is optional:
``pip install 'rt3d-tune[mmengine]'``.
"""
