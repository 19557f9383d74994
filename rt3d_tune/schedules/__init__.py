"""Schedules: the LR and momentum curves as pure functions of progress, and their length.

``policies`` (mmcv's annealing, warm-up and policy formulas, the single source both
backends' hooks step through), ``budget`` (:class:`~rt3d_tune.schedules.budget.Budget`,
a run's length, and :class:`~rt3d_tune.schedules.budget.Scaling`, the one rule that
moves a place of the full run onto a trial's length), ``mmcv_to_mmengine`` (an mmcv
``lr_config``/``momentum_config`` written as mmengine ``param_scheduler`` entries).
"""
