"""The Ray side of a search: Tuner wiring, the trial, callbacks, schedulers, status line.

``tuner.run_search`` starts (or joins) Ray through ``ray_session``, builds the Tune
scheduler (``schedulers``) and the Optuna searcher from a parsed
:class:`rt3d_tune.space.SearchSpace`, runs ``trainable.train_trial`` for each trial,
records every report (``callbacks``) and prints one status line (``status``); the ranks
of a data-parallel trial run in ``worker_group``. Each rank is
:func:`rt3d_tune.trial.body.train_rank`, which trains with the space's backend
(:mod:`rt3d_tune.backends`). The space itself lives in :mod:`rt3d_tune.space`; the run
directory's files in :mod:`rt3d_tune.results`.

Importing this package imports neither Ray nor torch; its modules do, when imported.
"""
