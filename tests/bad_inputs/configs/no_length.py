_base_ = '../../../configs/pointnet/pointnet_shapes.py'
# no training length of its own: the runner comes from the space's stop.max_epochs
runner = None
