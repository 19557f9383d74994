"""The one interface a training backend implements: :class:`Backend`.

A backend is what trains a config: rt3d-tune's mmcv-style runner (``mmcv``), mmengine's
Runner (``mmengine``), or a third one registered by a user
(:func:`rt3d_tune.backends.register_backend`). The search, the space, ``validate``,
``schedule``, ``train`` and the export ask "which backend" once
(:func:`rt3d_tune.backends.backend_for` on a config, or ``SearchSpace.backend``) and then
call these methods; nothing outside ``rt3d_tune.backends`` branches on a backend's name.

Like Ray Train's ``Backend``, the base class is small: a subclass names itself, tells its
configs, loads one, says how long it trains and how many iterations an epoch has, and
starts a trial's training (:meth:`Backend.start_trial`). Everything else has a default
that suits a backend whose schedule follows its run length by itself and that has no
``validate`` or ``schedule`` support beyond that.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rt3d_tune.errors import ConfigError
from rt3d_tune.schedules.budget import Budget

__all__ = ["DEFAULT_PROBE_RATIO", "VALUE_ERRORS", "Backend", "TrialRun", "collect_problem"]

DEFAULT_PROBE_RATIO = 0.25
"""A cool-down probe's length as a fraction of the iterations trained so far
(``scheduler.probe_ratio``'s default)."""

# Exceptions a builder or a schedule raises on a bad value; ``validate`` reports them as
# problems of the config instead of stopping at the first one.
VALUE_ERRORS = (ValueError, TypeError, ArithmeticError, KeyError, IndexError)


def collect_problem(problems: list[ConfigError], key_path: str, action: Callable[[], Any]
                    ) -> Any:
    """Run one build step; record its problem (with ``key_path``) instead of raising.

    Returns:
        What ``action`` returned, or None when it raised a ConfigError or a value error.
    """
    try:
        return action()
    except ConfigError as err:
        problems.append(err if err.key_path else err.with_context(key_path=key_path))
    except VALUE_ERRORS as err:
        problems.append(ConfigError(f"{type(err).__name__}: {err}", key_path=key_path))
    return None


@dataclass
class TrialRun:
    """What a backend needs to start one rank of a trial (built by the shared trial body,
    ``rt3d_tune.trial.body``).

    Args:
        trial_id: Tune's id of the trial.
        work_dir: the rank's trial folder (rank 0 writes the trial's files there).
        reporter: the trial's ``rt3d_tune.backends.report.Reporter``; the backend
            feeds it each evaluation (:meth:`~rt3d_tune.backends.report.Reporter.
            report_evaluation`), e.g. from a hook of its runner.
        device: ``'cuda'`` or ``'cpu'``.
        rank: this rank; ``world_size``: the trial's ranks (its process group is joined).
        resume_path: a checkpoint file the trial resumes from (written by the
            reporter's ``save``), or None.
        config_file: the base config's path (for a backend that reads it again).
        search_name: the run directory's name; ``params``: the trial's params;
            ``confirm_of``: the trial a confirmation run confirms (for trial loggers).
    """

    trial_id: str
    work_dir: Path
    reporter: Any
    device: str = "cpu"
    rank: int = 0
    world_size: int = 1
    resume_path: Path | None = None
    config_file: str | None = None
    search_name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    confirm_of: str | None = None


class Backend(ABC):
    """A training backend: how rt3d-tune reads, scales, checks and trains its configs.

    Class attributes:
        name: the name a space file gives under ``backend:``.
        fidelity_unit: what one Tune fidelity (``training_iteration``) counts:
            ``'epoch'`` or ``'validation round'``.
        seed_key: the dotted key path of a config's training seed.
        runtime_keys: top-level keys a space may create in a config that lacks them.
        signature: the keys that tell its configs, for messages.
        length_key: where a config's run length lives (``'runner'``), for messages.
        loop_name: what that section is called in words (``'runner'``).
        train_data_key: where the train data loader is (``'data.train'``), for messages.
        no_evaluation_hint: what a config needs for a trial to evaluate.
    """

    name: ClassVar[str]
    fidelity_unit: ClassVar[str] = "epoch"
    seed_key: ClassVar[str] = "seed"
    runtime_keys: ClassVar[tuple[str, ...]] = ()
    signature: ClassVar[str] = ""
    length_key: ClassVar[str] = "runner"
    loop_name: ClassVar[str] = "runner"
    train_data_key: ClassVar[str] = "data.train"
    no_evaluation_hint: ClassVar[str] = "the base config needs an evaluation"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Backend) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # reading a config -------------------------------------------------------------
    @abstractmethod
    def detects(self, cfg: Mapping[str, Any]) -> bool:
        """Whether ``cfg`` (a plain-dict view) is a config of this backend."""

    def reads_alone(self, path: str | Path) -> bool:
        """Whether this backend may read a file rt3d-tune's ``Config`` refused
        (mmengine's lazy imports); default False."""
        return False

    @abstractmethod
    def load_config(self, path: str | Path, options: Mapping[str, Any] | None = None,
                    key_path: str = "base", loaded: Any = None) -> Any:
        """The config at ``path`` as this backend reads it (an ``rt3d_tune.config.Config``),
        dotted ``options`` merged; ``loaded``: the file as rt3d-tune's ``Config`` read it
        without its ``custom_imports``, when it was read already.

        Raises:
            ConfigError: the file does not load (at ``key_path``).
        """

    # its length -------------------------------------------------------------------
    @abstractmethod
    def run_length(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """``{'max_epochs': n}`` or ``{'max_iters': n}``: how long ``cfg`` trains."""

    def base_max_epochs(self, cfg: Mapping[str, Any]) -> int | None:
        """``cfg``'s epochs; None when it trains by iterations."""
        return self.run_length(cfg).get("max_epochs")

    def length_overrides(self, base: Mapping[str, Any], max_epochs: int,
                         tuned: list[str]) -> dict[str, Any]:
        """The overrides that make ``base`` train ``max_epochs`` (``stop.max_epochs``);
        ``tuned``: the space's key paths.

        Raises:
            ConfigError: the backend cannot shorten a trial (the default), or the space
                tunes the run length too.
        """
        raise ConfigError(f"the {self.name} backend cannot set a trial's length",
                          key_path="stop.max_epochs", given=max_epochs,
                          hint="leave stop.max_epochs out")

    def max_fidelity(self, cfg: Mapping[str, Any], max_epochs: int | None) -> int:
        """The most fidelities (``fidelity_unit``) a trial of ``cfg`` can report, at
        ``max_epochs`` (the trial's length) when set."""
        length = max_epochs or next(iter(self.run_length(cfg).values()))
        return max(1, int(length))

    @abstractmethod
    def iters_per_epoch(self, cfg: Mapping[str, Any], world_size: int = 1) -> int:
        """Iterations in one train epoch of ``cfg`` for one of ``world_size`` ranks.

        Raises:
            ConfigError, OSError: the train data cannot be built here.
        """

    def budget(self, cfg: Mapping[str, Any], iters_per_epoch: int) -> Budget:
        """``cfg``'s :class:`~rt3d_tune.schedules.budget.Budget`."""
        length = self.run_length(cfg)
        return Budget(epochs=length.get("max_epochs"), iters=length.get("max_iters"),
                      iters_per_epoch=iters_per_epoch)

    # its schedule ------------------------------------------------------------------
    def check_before_scaling(self, cfg: Mapping[str, Any]) -> None:
        """Raise the first mistake of ``cfg`` that scaling would report less clearly
        (a misspelt scheduler); default nothing."""
        return

    def scale_schedule(self, cfg: Mapping[str, Any], full: Budget, trial: Budget
                       ) -> dict[str, Any]:
        """``cfg`` (plain dicts) with its LR/momentum schedule moved from ``full`` onto
        ``trial`` (:class:`~rt3d_tune.schedules.budget.Scaling`); default: a copy as it
        is (a schedule that follows the run's length by itself).

        Raises:
            ConfigError: a schedule that cannot be scaled.
        """
        from rt3d_tune.config.keypaths import plain_dict

        return plain_dict(cfg)

    def describe_scaling(self, full_cfg: Mapping[str, Any], trial_cfg: Mapping[str, Any]
                         ) -> list[str]:
        """One line per value :meth:`scale_schedule` changed; default none."""
        return []

    def scaling_note(self, full_cfg: Mapping[str, Any], trial_cfg: Mapping[str, Any]
                     ) -> list[str]:
        """What ``validate`` says of a scaled trial schedule (after ``'scaled schedule:
        F epochs -> T per trial: '``); default :meth:`describe_scaling` or a line that
        the schedule follows the run's length."""
        return self.describe_scaling(full_cfg, trial_cfg) or \
            ["the schedule follows the run's length by itself"]

    def simulate(self, cfg: Mapping[str, Any], iters_per_epoch: int, *,
                 max_epochs: int | None = None, max_iters: int | None = None,
                 world_size: int = 1) -> list[dict[str, Any]]:
        """The LR/momentum of every iteration of ``cfg`` (rows with ``iter``, ``epoch``,
        ``lr``, ``momentum``), at ``max_epochs``/``max_iters`` when given; default none
        (a backend without a simulator: the report shows no curve, ``rt3d-tune
        schedule`` refuses).

        Raises:
            ConfigError: a schedule that does not build.
        """
        return []

    def warmup_end(self, cfg: Mapping[str, Any], iters_per_epoch: int) -> int | None:
        """The first iteration after ``cfg``'s LR warm-up; None without one."""
        return None

    # validate and the trial ----------------------------------------------------------
    def check_trial_config(self, cfg: Any, iters_per_epoch: int,
                           model_cache: dict[str, Any] | None = None,
                           data_here: bool = True) -> list[ConfigError]:
        """Every problem a trial of ``cfg`` would hit before its first iteration
        (``rt3d-tune validate``); default none found.

        Args:
            cfg: the merged trial config.
            iters_per_epoch: iterations per epoch for a schedule simulation.
            model_cache: models already built, by ``repr`` of their config (filled in).
            data_here: whether the base config's data can be read on this machine; when
                not, problems of the data are not reported.
        """
        return []

    def persist(self, cfg: Any, work_dir: Path) -> None:
        """Write what a trial trains to ``work_dir/config.py`` (rank 0, before
        :meth:`start_trial`): the export's ``best_config.py`` is made from it.

        Raises:
            ConfigError: the config cannot be written.
        """
        cfg.dump(str(Path(work_dir, "config.py")))

    @abstractmethod
    def start_trial(self, cfg: Any, run: TrialRun) -> Callable[[], Any]:
        """Build this backend's training of ``cfg`` for one rank, with ``run.reporter``
        fed every evaluation (and saving through it), resumed from ``run.resume_path``
        when set; return what trains it (the shared trial body calls it and sends the
        last report).

        Raises:
            ConfigError: the trial config does not build.
        """

    # rt3d-tune train ------------------------------------------------------------------
    def check_launcher(self, launcher: str) -> None:
        """Refuse a ``rt3d-tune train --launcher`` this backend cannot train under; by
        default ``ray`` (which runs rt3d-tune's own runner's ranks as Ray actors).

        Raises:
            ConfigError: ``launcher`` does not suit this backend.
        """
        if launcher == "ray":
            raise ConfigError(f"--launcher ray runs rt3d-tune's own runner, not the "
                              f"{self.name} backend", key_path="--launcher", given=launcher,
                              hint="--launcher none, or resources.workers in a search")

    def train_config(self, path: str, cfg: Any, *, work_dir: str | None, launcher: str,
                     **options: Any) -> dict[str, Any] | None:
        """Train the config at ``path`` (``cfg``: as :func:`rt3d_tune.backends.read_config`
        read it) as ``rt3d-tune train`` does; the summary (``epoch``, ``iter``,
        ``work_dir``) on rank 0, None on other ranks.

        Args:
            path: the config file.
            cfg: the loaded config.
            work_dir: ``--work-dir``; None: the config's, else ``./work_dirs/<name>``.
            launcher: ``'none'`` or ``'pytorch'`` (one torchrun rank).
            options: ``cfg_options``, ``resume_from``, ``auto_resume``, ``seed``,
                ``deterministic``.

        Raises:
            ConfigError: the backend cannot train outside a search (the default), or the
                config does not build.
            DivergenceError: the loss became non-finite.
        """
        raise ConfigError(f"rt3d-tune train does not train {self.name} configs",
                          key_path="CONFIG", given=path)

    # the export -----------------------------------------------------------------------
    def mmengine_spelling(self, cfg: Mapping[str, Any], iters_per_epoch: int) -> str | None:
        """``cfg`` written as an mmengine config (``best/best_mmengine.py``), or None when
        this backend has none to write (the default)."""
        return None
