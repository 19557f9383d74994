"""Where a Tune scheduler compares trials: its rungs, from the space's ``scheduler`` section.

Pure (no Ray): ``validate`` prints the rungs and the trial's report hook runs a cool-down
probe at each. ASHA's and HyperBand's rungs re-derive Ray's private bracket arithmetic;
the tests check them against the installed Ray's decisions, driven through its public
scheduler API.
"""

from __future__ import annotations

import math

from rt3d_tune.space.sections import SchedulerSettings

__all__ = ["rung_epochs"]


def rung_epochs(settings: SchedulerSettings, max_t: int) -> frozenset[int]:
    """The fidelities at which ``settings``' Tune scheduler compares trials (where a
    ``scheduler.probe`` runs), below ``max_t`` (the last report needs no probe).

    ASHA: ``grace_period * reduction_factor**(k + s)`` for every bracket ``s`` (Ray's
    ``_Bracket`` rungs); HyperBand: ``int(max_t * eta**-s) * eta**i`` (its bracket
    milestones); median: every fidelity from ``grace_period`` on (it decides at every
    report). Other schedulers have none.
    """
    args = dict(settings.args)
    found: set[int] = set()
    if settings.type == "asha":
        grace, rf = int(args.get("grace_period", 1)), float(args.get("reduction_factor", 4))
        for s in range(int(args.get("brackets", 1))):
            rungs = int(math.log(max_t / grace) / math.log(rf) - s + 1)
            # a rung between two reports is decided at the first report after it
            found.update(math.ceil(grace * rf ** (k + s)) for k in range(max(0, rungs)))
    elif settings.type == "hyperband":
        eta = float(args.get("reduction_factor", 3))
        s_max_1 = round(math.log(max_t) / math.log(eta)) + 1
        for s in range(s_max_1):
            r = int(max_t * eta ** (-s))
            while 0 < r < max_t:
                found.add(r)
                r = int(min(r * eta, max_t))
    elif settings.type == "median":
        found.update(range(int(args.get("grace_period", 1)), max_t))
    return frozenset(f for f in found if 0 < f < max_t)
