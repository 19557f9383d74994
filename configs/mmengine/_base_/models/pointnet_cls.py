# PointNet without transform nets: shared per-point MLP, max pool, MLP head.
model = dict(
    type='ShapesPointNet',
    num_classes=5,
    channels=[32, 64, 128],
    head_channels=64,
    dropout=0.2)
