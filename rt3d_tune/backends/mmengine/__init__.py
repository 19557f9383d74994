"""Trials of OpenMMLab 2.x configs on mmengine's own Runner (``backend: mmengine``).

``dialect`` tells an mmengine config from an mmcv 1.x one and loads it with mmengine's
``Config`` (pure apart from that import); ``trial`` runs one trial with
``Runner.from_cfg(cfg).train()`` and a hook that reports each validation to Tune;
``validate`` builds every branch's optim wrapper and schedulers with mmengine's
registries. mmengine is optional: ``pip install 'rt3d-tune[mmengine]'``.
"""
