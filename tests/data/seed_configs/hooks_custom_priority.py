a_value = 3
b_value = 'b'

# tutorial snippet
custom_imports = dict(imports=['seed_modules.my_hook'], allow_failed_imports=False)

# tutorial snippet
custom_hooks = [
    dict(type='MyHook', a=a_value, b=b_value, priority='NORMAL')
]
