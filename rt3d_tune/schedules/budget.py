"""Run lengths and the one scaling rule: :class:`Budget` and :class:`Scaling`.

A search trial often trains fewer iterations than its base config (``stop.max_epochs: 3``
on an 8-epoch config). Its schedule is the full run's curve compressed in time: every
place tied to the run length moves from full iteration ``i`` to ``i * r``, with
``r = trial.total_iters / full.total_iters``, by the rule of :class:`Scaling`. Each
backend applies it to its own schedule sections
(``rt3d_tune.backends.mmcv.schedule.scale_schedule`` for ``lr_config``/``momentum_config``,
``rt3d_tune.backends.mmengine.schedule.scale_param_schedulers`` for ``param_scheduler``).
Pure: no torch, no runner.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from rt3d_tune.errors import ConfigError

__all__ = ["Budget", "Scaling"]


@dataclass(frozen=True, kw_only=True)
class Budget:
    """The training length of a config or a trial.

    Args:
        epochs: max epochs of an epoch-based runner (None for an iteration runner).
        iters: max iterations of an iteration runner (None for an epoch-based runner).
        iters_per_epoch: iterations per epoch (the train loader's length; an
            iteration runner's "epochs" are passes over the data).

    Raises:
        ConfigError: not exactly one of ``epochs`` and ``iters``, or a length that is not
            a positive integer (key paths ``runner.max_epochs``, ``runner.max_iters``,
            ``iters_per_epoch``).
    """

    epochs: int | None = None
    iters: int | None = None
    iters_per_epoch: int

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.iters is None):
            raise ConfigError("a budget is either epochs or iterations", key_path="runner",
                              expected="exactly one of epochs and iters",
                              given={"epochs": self.epochs, "iters": self.iters})
        for key, value in (("runner.max_epochs", self.epochs), ("runner.max_iters", self.iters),
                           ("iters_per_epoch", self.iters_per_epoch)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < 1):
                raise ConfigError("a training length must be a positive integer",
                                  key_path=key, expected="an int >= 1", given=value)

    @property
    def iter_based(self) -> bool:
        """True for an iteration runner (the length counts iterations)."""
        return self.epochs is None

    @property
    def total_iters(self) -> int:
        """The number of training iterations."""
        if self.epochs is not None:
            return self.epochs * self.iters_per_epoch
        assert self.iters is not None  # __post_init__ checked that one of them is set
        return self.iters

    def describe(self) -> str:
        """``'8 epochs'`` or ``'1000 iterations'``."""
        if self.epochs is not None:
            return f"{self.epochs} epoch{'s' * (self.epochs != 1)}"
        return f"{self.iters} iteration{'s' * (self.iters != 1)}"


# where milestones go -----------------------------------------------------------------
@dataclass(frozen=True)
class Scaling:
    """The one rule that moves a full run's places onto a trial, for both backends.

    A place ``p`` of the ``full`` run (epochs when counted in epochs, else iterations),
    ``full`` iteration ``i``, moves to trial iteration ``i * r`` exactly, with
    ``r = trial.total_iters / full.total_iters``. Places counted in epochs stay whole
    trial epochs when every moved place of the same entry lands on one; otherwise they
    all become iterations, rounded half up (so a junction that two entries share moves
    to the same iteration in both).

    Args:
        full: the budget the config was written for.
        trial: the trial's budget.
    """

    full: Budget
    trial: Budget

    @property
    def ratio(self) -> Fraction:
        """``r``: trial iterations per full iteration."""
        return Fraction(self.trial.total_iters, self.full.total_iters)

    @staticmethod
    def length(budget: Budget, by_epoch: bool) -> int:
        """``budget``'s length: epochs when ``by_epoch`` (and it counts epochs), else
        iterations."""
        return budget.epochs if by_epoch and budget.epochs is not None else budget.total_iters

    def places(self, points: Sequence[Fraction | int], by_epoch: bool) -> list[Fraction]:
        """Where full places (epochs when ``by_epoch``, else iterations) fall, exactly, in
        trial iterations."""
        unit = self.full.iters_per_epoch if by_epoch else 1
        return [Fraction(p) * unit * self.ratio for p in points]

    def moved(self, points: Sequence[Fraction | int], by_epoch: bool
              ) -> tuple[bool, list[int]]:
        """Full places -> ``(in_epochs, trial places)``: whole trial epochs when
        ``by_epoch`` and every moved place is one, else trial iterations rounded half up."""
        places = self.places(points, by_epoch)
        per_epoch = self.trial.iters_per_epoch
        if by_epoch and all(place % per_epoch == 0 for place in places):
            return True, [int(place / per_epoch) for place in places]
        return False, [math.floor(place + Fraction(1, 2)) for place in places]
