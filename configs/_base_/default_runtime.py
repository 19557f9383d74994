checkpoint_config = dict(interval=1)
# By default we use the text logger; add dict(type='TensorboardLoggerHook')
# to the hooks for TensorBoard event files.
log_config = dict(
    interval=50,
    hooks=[
        dict(type='TextLoggerHook'),
    ])
dist_params = dict(backend='nccl')
log_level = 'INFO'
work_dir = None
load_from = None
resume_from = None
workflow = [('train', 1)]
