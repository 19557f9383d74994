# Seeded point clouds of five shapes; train and val differ by seed.
dataset_type = 'SyntheticShapesDataset'
class_names = ['sphere', 'cube', 'cylinder', 'cone', 'torus']
data = dict(
    samples_per_gpu=16,
    workers_per_gpu=0,
    train=dict(
        type=dataset_type,
        num_samples=320,
        num_points=128,
        classes=class_names,
        noise=0.03,
        seed=0),
    val=dict(
        type=dataset_type,
        num_samples=200,
        num_points=128,
        classes=class_names,
        noise=0.03,
        seed=1),
    test=dict(
        type=dataset_type,
        num_samples=200,
        num_points=128,
        classes=class_names,
        noise=0.03,
        seed=2))
evaluation = dict(interval=1, metric='accuracy')
