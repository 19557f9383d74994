"""Orchestration overhead per trial: N no-op trials through rt3d-tune's search path.

Runs, on one local Ray (2 CPUs, started once, loopback only):

* rt3d-tune: ``run_search`` over N no-op trials (``_common.NOOP_CONFIG``: one weight,
  one iteration, one evaluation, one report): space file, OptunaSearch, reused actors,
  the trial builds its config and runner, export at the end (results CSV, best config,
  study.db, report with plots). Its phases (start-up, trials, export) come from the
  recorded trial start and end times; a second run with N/4 trials splits the cost into
  a fixed cost per search and a marginal cost per trial (noisy on a loaded machine).
* the fair baseline (``_common.RAW_FAIR``), at the same N: raw ``Tuner.fit`` with the
  environment variables the search sets (``TUNE_ENV``), ``reuse_actors=True``,
  OptunaSearch on one loguniform parameter, two at a time, each trial importing torch
  and stepping a one-weight SGD optimizer before its one report (what every torch trial
  pays: torch in each new worker, torch._dynamo at the first optimizer step).
* for context, same N: raw Tune with its defaults (``RAW_DEFAULTS``: fresh actor per
  trial, default loggers, no torch), raw Tune as the search runs it without torch
  (``RAW_NO_TORCH``), and a plain Optuna loop in one process (the floor).

Outside ``--quick``, a one-trial run of rt3d-tune and of the fair baseline goes first,
unmeasured (``_common.warm_up``), so that one-off imports in the driver count for none
of them. ``--repeats`` keeps the minimum.

    python bench/trial_overhead.py [--n 20] [--repeats 1] [--profile TOP]
    python bench/trial_overhead.py --profile-driver 40   # where run_search's time goes

Prints one FIGURE line per measurement (seconds per trial) and RATIO lines; the last
line is ``RATIO rt3d/raw_fair``. Target: rt3d-tune <= 1.25x the fair baseline.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path

import _common


def time_optuna(n: int) -> float:
    """Seconds per trial of a plain in-process Optuna loop (the floor)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    start = time.perf_counter()
    study.optimize(lambda t: t.suggest_float("x", 1.0e-3, 1.0e-1, log=True), n_trials=n)
    return (time.perf_counter() - start) / n


def profile_trial_body(folder: Path, top: int) -> None:
    """Profile what one no-op trial does inside its actor, outside Ray (warm process)."""
    from rt3d_tune.runner.builder import build_runner
    from rt3d_tune.space.space import load_space
    from rt3d_tune.trial.setup import TrialSetup, build_trial_config

    space = load_space(_common.write_noop_space(folder, 1))
    setup = TrialSetup(run_dir=str(folder), base_config=str(space.base_path), space=space)

    def body(i: int) -> None:
        cfg = build_trial_config(setup, {"optimizer.lr": 0.01})
        build_runner(cfg, work_dir=str(folder / "profile" / str(i)), device="cpu").run()

    body(0)  # warm: imports, config cache
    start = time.perf_counter()
    for i in range(1, 11):
        body(i)
    _common.figure(
        "trial body in a warm process (build config + runner + run)",
        (time.perf_counter() - start) / 10,
        "s/trial",
    )
    prof = cProfile.Profile()
    prof.runcall(body, 11)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    print(out.getvalue())


def profile_driver(folder: Path, n: int, top: int) -> None:
    """cProfile of ``run_search`` in the driver (Tune's controller loop runs there)."""
    prof = cProfile.Profile()
    wall = prof.runcall(_common.run_rt3d_noop, folder, n, "rt3d_profiled")
    _common.figure("rt3d-tune run_search under cProfile", wall / n, "s/trial", f"n={n}")
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="trials per measurement")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="repeat the Ray measurements; the minimum is reported",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="TOP",
        help="also profile one trial body in-process, TOP functions",
    )
    parser.add_argument(
        "--profile-driver",
        type=int,
        default=0,
        metavar="TOP",
        help="only profile run_search in the driver (no baselines)",
    )
    parser.add_argument("--quick", action="store_true", help="n=2, no profile (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.repeats, args.profile = 2, 1, 0
    _common.start_ray(2)
    if args.profile_driver:
        with tempfile.TemporaryDirectory(prefix="rt3d_bench_") as tmp:
            profile_driver(Path(tmp), args.n, args.profile_driver)
        return 0
    with tempfile.TemporaryDirectory(prefix="rt3d_bench_") as tmp:
        folder = Path(tmp)
        baselines = (_common.RAW_DEFAULTS, _common.RAW_NO_TORCH, _common.RAW_FAIR)
        raw: dict[_common.RawTune, list[float]] = {baseline: [] for baseline in baselines}
        ours: list[float] = []
        phases: dict[str, float] = {}
        if not args.quick:
            _common.warm_up(folder)
        small = max(1, args.n // 4)
        for rep in range(args.repeats):
            for i, baseline in enumerate(baselines):
                wall = _common.run_raw_tune(folder, args.n, f"raw_{i}_{rep}", baseline)
                raw[baseline].append(wall / args.n)
            started = time.time()
            ours.append(_common.run_rt3d_noop(folder, args.n, f"rt3d_{rep}") / args.n)
            if ours[-1] == min(ours):
                run = folder / "runs" / f"rt3d_{rep}"
                phases = _common.search_phases(run, started, ours[-1] * args.n)
        few = _common.run_rt3d_noop(folder, small, "rt3d_small")
        marginal = (min(ours) * args.n - few) / (args.n - small) if args.n > small else 0.0
        floor = time_optuna(max(args.n, 100))
        for baseline in baselines:
            _common.figure(baseline.name, min(raw[baseline]), "s/trial", f"n={args.n}")
        _common.figure("plain Optuna loop (floor)", floor, "s/trial")
        _common.figure("rt3d-tune run_search", min(ours), "s/trial", f"n={args.n}, export included")
        for phase, seconds in phases.items():
            _common.figure(f"rt3d-tune {phase}", seconds, "s", f"n={args.n}")
        _common.figure(
            "rt3d-tune marginal cost of one more trial",
            marginal,
            "s/trial",
            f"(T(n={args.n}) - T(n={small})) / {args.n - small}",
        )
        _common.figure(
            "rt3d-tune fixed cost per search (actor start, imports, export)",
            few - small * marginal,
            "s",
        )
        if args.profile:
            profile_trial_body(folder, args.profile)
    _common.ratio("rt3d/raw_defaults", min(ours) / min(raw[_common.RAW_DEFAULTS]))
    _common.ratio("rt3d/raw_no_torch", min(ours) / min(raw[_common.RAW_NO_TORCH]))
    _common.ratio("rt3d/raw_fair", min(ours) / min(raw[_common.RAW_FAIR]), 1.25)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
