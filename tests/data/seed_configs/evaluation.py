# tutorial snippet
evaluation = dict(interval=1, metric='bbox')
