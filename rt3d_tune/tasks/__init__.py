"""Built-in tasks: importing this package registers their models and datasets."""

from rt3d_tune.tasks import lidar_dataset, pillar_bev, pointnet  # noqa: F401
