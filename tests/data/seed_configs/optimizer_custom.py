a_value = 0.01
b_value = 0.9
c_value = 0.0001

# tutorial snippet
custom_imports = dict(imports=['seed_modules.my_optimizer'], allow_failed_imports=False)

# tutorial snippet
optimizer = dict(type='MyOptimizer', a=a_value, b=b_value, c=c_value)
