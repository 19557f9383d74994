# The PointNet shapes task for mmengine's Runner (OpenMMLab 2.x spelling of
# configs/pointnet/pointnet_shapes.py): an epoch takes a few seconds on a CPU.
_base_ = [
    './_base_/models/pointnet_cls.py',
    './_base_/datasets/synthetic_shapes.py',
    './_base_/schedules/cosine_8e.py',
    './_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['rt3d_tune.tasks.mmengine_shapes'], allow_failed_imports=False)
