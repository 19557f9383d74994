# A small pillar-based BEV detector: PointPillars-style pillar encoder, a
# SECOND-style 2D backbone with an upsampling neck, a CenterPoint-style head.
model = dict(
    type='PillarBEVDetector',
    num_classes=2,
    point_cloud_range=[0, -20, -3, 40, 20, 1],
    voxel_size=[0.3125, 0.3125, 4],
    pillar_channels=16,
    backbone=dict(
        channels=[32, 64],
        layer_nums=[1, 2],
        strides=[2, 2],
        upsample_channels=32,
        norm='bn'),
    head_channels=32,
    max_objs=64,
    min_radius=2,
    heatmap_weight=1.0,
    reg_weight=0.25,
    test_cfg=dict(max_num=50, score_thr=0.1))
