"""One trial of a search, for every backend: what the trials of a search share
(``setup``: :class:`~rt3d_tune.trial.setup.TrialSetup`, the trial config builder, the
trial's device), where a trial writes (``folder``: :class:`~rt3d_tune.trial.folder.
TrialFolder`), and the trial body (``body.train_rank``: folder, device, process group,
config, the backend's training, the last report). Below ``search`` (the Ray side, which
calls it), above ``space`` and ``backends``.
"""
