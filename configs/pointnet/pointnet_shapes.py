_base_ = [
    '../_base_/models/pointnet_cls.py',
    '../_base_/datasets/synthetic_shapes.py',
    '../_base_/default_runtime.py',
]
# A short schedule: an epoch takes a fraction of a second on a CPU.
optimizer = dict(type='Adam', lr=0.003, weight_decay=0.0001)
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy='CosineAnnealing', min_lr_ratio=0.01)
runner = dict(type='EpochBasedRunner', max_epochs=6)
log_config = dict(interval=10)
evaluation = dict(interval=1, metric='accuracy')
