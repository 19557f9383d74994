_base_ = '../../../configs/mmengine/pointnet_shapes.py'
# a misspelt optimizer inside optim_wrapper (mmengine alone says "None is not a callable object")
optim_wrapper = dict(optimizer=dict(type='SDG', lr=0.01, momentum=0.9))
