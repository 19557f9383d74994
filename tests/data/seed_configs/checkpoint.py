# tutorial snippet
checkpoint_config = dict(interval=1)
