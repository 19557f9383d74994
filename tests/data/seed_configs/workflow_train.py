# tutorial snippet
workflow = [('train', 1)]
