"""The settings sections of a space file: ``search``, ``scheduler``, ``resources``, ``stop``.

Each section is one frozen dataclass and one parser that checks every field (ConfigError
with the dotted key path, what was expected, what was given). Pure: no torch, no Ray.

Budget vocabulary (``stop``): a trial trains ``stop.max_epochs`` (default: the base
config's length). With ``schedule: scaled`` (the default) its LR and momentum schedules
are the base config's full-length curves resampled onto the trial's iterations
(:mod:`rt3d_tune.schedules.budget`); with ``truncated`` they run unchanged and stop early.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rt3d_tune.backends.base import DEFAULT_PROBE_RATIO
from rt3d_tune.config.limits import MAX_EPOCHS, MAX_TRIALS, MAX_WORKERS
from rt3d_tune.errors import ConfigError
from rt3d_tune.space.schema import (
    check_bool,
    check_known_keys,
    check_mapping,
    check_number,
    check_one_of,
)

if TYPE_CHECKING:
    from rt3d_tune.backends.base import Backend

__all__ = [
    "ALGORITHMS",
    "PLACEMENTS",
    "PROBES",
    "SCHEDULERS",
    "SCHEDULE_MODES",
    "Confirm",
    "Resources",
    "SchedulerSettings",
    "SearchSettings",
    "Stop",
    "fixed_overrides",
    "parse_resources",
    "parse_scheduler",
    "parse_search",
    "parse_stop",
]

ALGORITHMS = ("random", "grid", "qmc", "tpe", "cmaes")
SCHEDULERS = ("fifo", "asha", "hyperband", "median", "pbt")
QMC_TYPES = ("sobol", "halton")
SCHEDULE_MODES = ("scaled", "truncated")
PROBES = ("none", "cooldown")
PLACEMENTS = ("pack", "spread")  # Ray placement group strategies PACK and SPREAD
TRIAL_SEEDS = ("fixed", "random")
CONFIRM_LENGTHS = ("trial", "full")
# Schedulers that stop trials at rungs, where a probe can stand in for the plain metric;
# under them the cool-down probe is on by default: on the BEV task it ranks trials at
# the half-budget rung at 0.93 against their full-length value, the plain metric at 0.77
# (bench/fidelity.py, bench/README.md section 7).
PROBE_SCHEDULERS = ("asha", "hyperband", "median")


@dataclass(frozen=True)
class Confirm:
    """``search.confirm``: retrain the ``top_k`` best configs (and the baseline, the base
    config as written) with ``seeds`` new seeds each.

    The winner is the config with the best mean over its confirmation runs; ``top_k`` 0
    turns confirmation off. ``length``: ``trial`` trains the confirmation runs at the
    trial's budget (``stop.max_epochs``), ``full`` at the base config's own length.

    ``seeds`` 7 by default, measured: with the search's own pair (winner and baseline on
    the common trial seed) that makes 8 pairs for the verdict's paired t interval, the
    fewest at which a gain of one seed spread at full length is called better in most
    searches of the BEV fidelity grid (0.54 over its 6 configs with 6 seeds; 7 pairs
    0.47, 3 pairs 0.14; on the PointNet task 6 pairs already gave 0.55); each seed costs
    ``top_k + 1`` runs (bench/fidelity.py --verdict-seeds, bench/verdict_seeds.py,
    bench/README.md).
    """

    top_k: int = 3
    seeds: int = 7
    length: str = "trial"

    @property
    def enabled(self) -> bool:
        return self.top_k > 0 and self.seeds > 0


@dataclass(frozen=True)
class SearchSettings:
    """``search:``: the Optuna algorithm, trial count (None under grid: the grid decides),
    seed, the trials' training seed, and the confirmation of the winners.

    ``trial_seed``: ``"fixed"`` (every trial trains with the same seed: common random
    numbers, so trials differ by their config only), ``"random"`` (each trial draws its
    own) or an int (that seed, fixed).

    ``baseline``: run the base config as written (with the trial budget and seed) as the
    first trial, and confirm it with the top configs for the verdict (default true; off
    under PBT, which changes every member's config as it trains).
    """

    algorithm: str = "random"
    num_samples: int | None = 10
    seed: int = 0
    qmc_type: str = "sobol"
    trial_seed: str | int = "fixed"
    confirm: Confirm = field(default_factory=Confirm)
    baseline: bool = True


@dataclass(frozen=True)
class SchedulerSettings:
    """``scheduler:``: the Tune scheduler and its arguments (Tune's keyword names; epochs).

    ``probe``: ``"cooldown"`` (the default under asha, hyperband and median) makes each
    rung's reported metric that of a short copy of the trial whose LR was annealed to
    the schedule's end (``probe_ratio`` of the iterations trained so far); ``"none"``
    reports the plain metric.
    """

    type: str = "fifo"
    args: Mapping[str, Any] = field(default_factory=dict)
    probe: str = "none"
    probe_ratio: float = DEFAULT_PROBE_RATIO


@dataclass(frozen=True)
class Resources:
    """``resources:``: ``workers`` data-parallel workers per trial, each with ``cpu`` CPUs
    and ``gpu`` GPUs (a fraction of one GPU only with one worker), placed ``pack`` (on as
    few nodes as possible) or ``spread`` (across nodes). One worker: per trial, as before.
    """

    cpu: float = 1.0
    gpu: float = 0.0
    workers: int = 1
    placement: str = "pack"

    @property
    def trial_cpu(self) -> float:
        """The CPUs one trial holds: all its workers together."""
        return self.workers * self.cpu

    @property
    def trial_gpu(self) -> float:
        """The GPUs one trial holds: all its workers together."""
        return self.workers * self.gpu


@dataclass(frozen=True)
class Stop:
    """``stop:``: the trial's length in epochs, how its schedule fits that length, and a
    wall-clock budget in seconds for the search phase."""

    max_epochs: int | None = None
    time_budget_s: float | None = None
    schedule: str = "scaled"


# search ------------------------------------------------------------------------------
def _parse_confirm(value: Any) -> Confirm:
    if value is False or value == 0:
        return Confirm(top_k=0)
    section = check_mapping(value, "search.confirm")
    check_known_keys(section, ("top_k", "seeds", "length"), "search.confirm")
    default = Confirm()
    return Confirm(
        top_k=check_number(section.get("top_k", default.top_k), "search.confirm.top_k",
                           integer=True, minimum=0, maximum=MAX_TRIALS),
        seeds=check_number(section.get("seeds", default.seeds), "search.confirm.seeds",
                           integer=True, minimum=1, maximum=MAX_TRIALS),
        length=check_one_of(section.get("length", default.length), CONFIRM_LENGTHS,
                            "search.confirm.length"),
    )


def _parse_trial_seed(value: Any) -> str | int:
    if isinstance(value, int) and not isinstance(value, bool):
        return check_number(value, "search.trial_seed", integer=True, minimum=0)
    if value not in TRIAL_SEEDS:
        raise ConfigError("unknown trial seed", key_path="search.trial_seed",
                          expected="fixed, random or an integer >= 0", given=value,
                          hint="fixed gives every trial the same seed (the default)")
    return value


def parse_search(section: Mapping[str, Any], grid_ok: Callable[[], None]) -> SearchSettings:
    """``search:``; ``grid_ok`` raises when the grid algorithm cannot enumerate the space."""
    check_known_keys(section, ("algorithm", "num_samples", "seed", "max_concurrent", "qmc_type",
                               "trial_seed", "confirm", "baseline"), "search")
    algorithm = check_one_of(section.get("algorithm", "random"), ALGORITHMS, "search.algorithm")
    if algorithm == "grid":
        grid_ok()
        if "num_samples" in section:
            raise ConfigError("under the grid algorithm the grid decides the number of trials",
                              key_path="search.num_samples", hint="remove num_samples")
        num_samples = None
    else:
        num_samples = check_number(section.get("num_samples", 10), "search.num_samples",
                                   integer=True, minimum=1)
    return SearchSettings(
        algorithm=algorithm,
        num_samples=num_samples,
        seed=check_number(section.get("seed", 0), "search.seed", integer=True, minimum=0),
        qmc_type=check_one_of(section.get("qmc_type", "sobol"), QMC_TYPES, "search.qmc_type"),
        trial_seed=_parse_trial_seed(section.get("trial_seed", "fixed")),
        confirm=_parse_confirm(section.get("confirm", {})),
        baseline=check_bool(section.get("baseline", True), "search.baseline"),
    )


# scheduler ---------------------------------------------------------------------------
_SCHEDULER_ARGS: dict[str, dict[str, tuple[Any, Callable[[Any, str], Any]]]] = {
    "fifo": {},
    "asha": {
        "grace_period": (1, lambda v, p: check_number(v, p, integer=True, minimum=1,
                                                      maximum=MAX_EPOCHS)),
        "reduction_factor": (4, lambda v, p: check_number(v, p, above=1)),
        "brackets": (1, lambda v, p: check_number(v, p, integer=True, minimum=1)),
    },
    "hyperband": {"reduction_factor": (3, lambda v, p: check_number(v, p, above=1))},
    "median": {
        "grace_period": (1, lambda v, p: check_number(v, p, integer=True, minimum=1,
                                                      maximum=MAX_EPOCHS)),
        "min_samples_required": (3, lambda v, p: check_number(v, p, integer=True, minimum=1,
                                                              maximum=MAX_TRIALS)),
    },
    "pbt": {
        "perturbation_interval": (1, lambda v, p: check_number(v, p, integer=True, minimum=1,
                                                               maximum=MAX_EPOCHS)),
        "quantile_fraction": (0.25, lambda v, p: check_number(v, p, minimum=0, maximum=0.5)),
        "resample_probability": (0.25, lambda v, p: check_number(v, p, minimum=0, maximum=1)),
        # synchronous PBT: every trial waits at each perturbation point for the others
        "synch": (False, check_bool),
    },
}


def _parse_probe(section: Mapping[str, Any], kind: str) -> tuple[str, float]:
    default = "cooldown" if kind in PROBE_SCHEDULERS else "none"
    probe = check_one_of(section.get("probe", default), PROBES, "scheduler.probe")
    ratio = section.get("probe_ratio", DEFAULT_PROBE_RATIO)
    if not (isinstance(ratio, (int, float)) and not isinstance(ratio, bool)
            and math.isfinite(ratio) and 0 < ratio < 1):
        raise ConfigError("probe_ratio is the probe's length as a fraction of the iterations "
                          "trained so far", key_path="scheduler.probe_ratio",
                          expected="a number in (0, 1)", given=ratio,
                          hint=f"{DEFAULT_PROBE_RATIO} is the default")
    if probe != "none" and kind not in PROBE_SCHEDULERS:
        raise ConfigError(f"a {kind} scheduler has no rungs to probe", key_path="scheduler.probe",
                          expected=f"a scheduler among {', '.join(PROBE_SCHEDULERS)}",
                          given=f"probe: {probe} under {kind}",
                          hint="remove probe, or use scheduler.type: asha")
    if "probe_ratio" in section and probe == "none":
        raise ConfigError("probe_ratio without a probe", key_path="scheduler.probe_ratio",
                          hint="add probe: cooldown, or remove probe_ratio")
    return probe, float(ratio)


def parse_scheduler(section: Mapping[str, Any], max_epochs: int | None) -> SchedulerSettings:
    """``scheduler:``, checked against the trial's length in epochs (None: unknown)."""
    kind = check_one_of(section.get("type", "fifo"), SCHEDULERS, "scheduler.type")
    spec = _SCHEDULER_ARGS[kind]
    check_known_keys(section, ("type", "probe", "probe_ratio", *spec), "scheduler")
    args = {name: check(section.get(name, default), f"scheduler.{name}")
            for name, (default, check) in spec.items()}
    for name in ("grace_period", "perturbation_interval"):
        if name in args and max_epochs is not None and args[name] > max_epochs:
            raise ConfigError(
                f"{name} is longer than a trial ({max_epochs} epochs)",
                key_path=f"scheduler.{name}",
                expected=f"at most {max_epochs}",
                given=args[name],
            )
    probe, ratio = _parse_probe(section, kind)
    return SchedulerSettings(kind, args, probe, ratio)


# resources ---------------------------------------------------------------------------
def parse_resources(section: Mapping[str, Any], search: Mapping[str, Any]
                    ) -> tuple[Resources, int | None]:
    """``resources:`` and ``max_concurrent`` (which may sit in ``search`` instead)."""
    check_known_keys(section, ("workers", "cpu", "gpu", "placement", "max_concurrent"),
                     "resources")
    workers = _with_hint(lambda: check_number(section.get("workers", 1), "resources.workers",
                                              integer=True, minimum=1, maximum=MAX_WORKERS),
                         "the number of data-parallel workers per trial: 1 (the default) "
                         "trains a trial in one process")
    gpu = check_number(section.get("gpu", 0), "resources.gpu", minimum=0)
    if gpu != int(gpu) and workers > 1:
        raise ConfigError("a data-parallel trial takes whole GPUs per worker",
                          key_path="resources.gpu",
                          expected=f"a whole number of GPUs per worker with workers: {workers}",
                          given=gpu, hint=f"use gpu: {math.ceil(gpu)}"
                          + (", or workers: 1" if gpu < 1 else ""))
    if gpu > 1 and gpu != int(gpu):
        raise ConfigError("a trial may use a fraction of one GPU, or whole GPUs",
                          key_path="resources.gpu", given=gpu, hint=f"use {math.ceil(gpu)}")
    placement = _with_hint(lambda: check_one_of(section.get("placement", "pack"), PLACEMENTS,
                                                "resources.placement"),
                           "pack puts a trial's workers on as few nodes as possible (the "
                           "default), spread puts them on different nodes")
    res = Resources(cpu=float(check_number(section.get("cpu", 1), "resources.cpu", above=0)),
                    gpu=float(gpu), workers=workers, placement=placement)
    if "max_concurrent" in search and "max_concurrent" in section:
        raise ConfigError("max_concurrent is set twice", key_path="resources.max_concurrent",
                          hint="keep it in one place (search or resources)")
    where = "search" if "max_concurrent" in search else "resources"
    concurrent = {**search, **section}.get("max_concurrent")
    if concurrent is not None:
        check_number(concurrent, f"{where}.max_concurrent", integer=True, minimum=1,
                     maximum=MAX_TRIALS)
    return res, concurrent


def _with_hint(check: Callable[[], Any], hint: str) -> Any:
    """``check()``; its ConfigError gets ``hint`` when it has none of its own."""
    try:
        return check()
    except ConfigError as err:
        raise err if err.hint else err.with_context(hint=hint) from None


# stop --------------------------------------------------------------------------------
def parse_stop(section: Mapping[str, Any], base: Mapping[str, Any], backend: Backend) -> Stop:
    """``stop:``, checked against the base config (a scaled schedule needs its length)."""
    check_known_keys(section, ("max_epochs", "time_budget_s", "schedule"), "stop")
    stop = Stop(
        max_epochs=None if section.get("max_epochs") is None else check_number(
            section["max_epochs"], "stop.max_epochs", integer=True, minimum=1),
        time_budget_s=None if section.get("time_budget_s") is None else float(check_number(
            section["time_budget_s"], "stop.time_budget_s", above=0)),
        schedule=check_one_of(section.get("schedule", "scaled"), SCHEDULE_MODES,
                              "stop.schedule"),
    )
    if stop.max_epochs is None or backend.base_max_epochs(base):
        return stop
    if "schedule" not in section:  # nothing to scale from: the base's curve, cut short
        return Stop(stop.max_epochs, stop.time_budget_s, "truncated")
    if stop.schedule == "scaled":
        raise ConfigError(
            "a scaled schedule needs the base config's length to scale from",
            key_path="stop.schedule",
            expected="runner.max_epochs (or total_epochs) in the base config",
            given="scaled, with no max_epochs in the base config",
            hint="set runner = dict(type='EpochBasedRunner', max_epochs=N) in the base "
                 "config, or stop.schedule: truncated",
        )
    return stop


def fixed_overrides(stop: Stop, base: Mapping[str, Any], tuned: list[str], backend: Backend
                    ) -> dict[str, Any]:
    """The run length every trial gets from ``stop.max_epochs`` (``tuned``: the space's
    key paths, which may not tune the run length at the same time).

    Raises:
        ConfigError: the base trains by iterations, or the space tunes its length.
    """
    if stop.max_epochs is None:
        return {}
    return backend.length_overrides(base, stop.max_epochs, tuned)
