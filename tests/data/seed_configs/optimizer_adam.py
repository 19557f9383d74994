# tutorial snippet
optimizer = dict(type='Adam', lr=0.0003, weight_decay=0.0001)
