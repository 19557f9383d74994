"""The seed tutorial's user modules (its ``mmdet3d.core...`` modules), made real.

Configs import them with ``custom_imports = dict(imports=['seed_modules.my_optimizer'])``
(``tests/`` is on ``sys.path``): ``MyOptimizer`` (OPTIMIZERS), ``MyHook`` (HOOKS) and
``MyOptimizerConstructor`` (OPTIMIZER_BUILDERS).
"""
