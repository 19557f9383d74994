_base_ = [
    '../_base_/models/pillar_bev.py',
    '../_base_/datasets/kitti_bev.py',
    '../_base_/schedules/cyclic_40e.py',
    '../_base_/default_runtime.py',
]
# The KITTI range of PointPillars with 0.32 m pillars (216 x 248), three classes.
model = dict(
    num_classes=3,
    point_cloud_range=[0, -39.68, -3, 69.12, 39.68, 1],
    voxel_size=[0.32, 0.32, 4],
    max_objs=100)
evaluation = dict(interval=2, metric='bev')
