# tutorial snippet
workflow = [('train', 1), ('val', 1)]
