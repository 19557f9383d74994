# Seeded point clouds of five shapes; train and val differ by seed.
dataset_type = 'MMShapesDataset'
class_names = ['sphere', 'cube', 'cylinder', 'cone', 'torus']
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        num_samples=320,
        num_points=128,
        classes=class_names,
        noise=0.03,
        seed=0))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        num_samples=200,
        num_points=128,
        classes=class_names,
        noise=0.03,
        seed=1))
test_dataloader = val_dataloader
val_evaluator = dict(type='ShapesAccuracy')
test_evaluator = val_evaluator
