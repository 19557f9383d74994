# Generated LiDAR scenes (cars and pedestrians, occlusion, clutter, noise),
# seeded: train and val differ by seed. Scenes are made on first use and cached.
dataset_type = 'SyntheticLidarDataset'
class_names = ['Car', 'Pedestrian']
point_cloud_range = [0, -20, -3, 40, 20, 1]
data = dict(
    samples_per_gpu=4,
    workers_per_gpu=0,
    train=dict(
        type=dataset_type,
        num_scenes=160,
        seed=0,
        class_names=class_names,
        point_cloud_range=point_cloud_range,
        augment=True),
    val=dict(
        type=dataset_type,
        num_scenes=60,
        seed=1,
        class_names=class_names,
        point_cloud_range=point_cloud_range,
        augment=False),
    test=dict(
        type=dataset_type,
        num_scenes=60,
        seed=2,
        class_names=class_names,
        point_cloud_range=point_cloud_range,
        augment=False))
evaluation = dict(interval=1, metric='bev')
