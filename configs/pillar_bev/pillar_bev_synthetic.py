_base_ = [
    '../_base_/models/pillar_bev.py',
    '../_base_/datasets/synthetic_lidar.py',
    '../_base_/schedules/cyclic_40e.py',
    '../_base_/default_runtime.py',
]
# The one-cycle schedule of cyclic_40e, shortened to fit a CPU: 8 epochs of
# 40 iterations. The cyclic policy counts iterations, so it needs no change.
runner = dict(type='EpochBasedRunner', max_epochs=8)
log_config = dict(interval=10)
evaluation = dict(interval=1, metric='bev')
