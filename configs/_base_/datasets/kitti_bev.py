# KITTI 3D object detection in its own file layout (velodyne .bin, label_2,
# calib, ImageSets); set data_root to the folder holding ImageSets/ and training/.
dataset_type = 'KittiDataset'
data_root = 'data/kitti/'
class_names = ['Car', 'Pedestrian', 'Cyclist']
point_cloud_range = [0, -39.68, -3, 69.12, 39.68, 1]
data = dict(
    samples_per_gpu=4,
    workers_per_gpu=2,
    train=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        class_names=class_names,
        point_cloud_range=point_cloud_range,
        augment=True),
    val=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        class_names=class_names,
        point_cloud_range=point_cloud_range,
        augment=False),
    test=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        class_names=class_names,
        point_cloud_range=point_cloud_range,
        augment=False))
evaluation = dict(interval=1, metric='bev')
