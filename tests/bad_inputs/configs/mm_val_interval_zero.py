_base_ = '../../../configs/mmengine/pointnet_shapes.py'
# a validation every 0 epochs: mmengine's loop divides by it after the first epoch
train_cfg = dict(val_interval=0)
