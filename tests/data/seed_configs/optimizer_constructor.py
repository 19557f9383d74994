# The tutorial's MyOptimizerConstructor in use (the tutorial shows its code, not a config).
custom_imports = dict(imports=['seed_modules.my_constructor'], allow_failed_imports=False)
optimizer = dict(
    type='MyOptimizer', a=0.01, b=0.9, c=0.0001, constructor='MyOptimizerConstructor')
