_base_ = ['./_base_/schedule_1x.py', './_base_/default_runtime.py']

# tutorial snippet
optimizer_config = dict(
    _delete_=True, grad_clip=dict(max_norm=35, norm_type=2))
