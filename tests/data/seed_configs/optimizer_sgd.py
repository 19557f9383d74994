# tutorial snippet
optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001)
