"""Scale: many short trials through rt3d-tune's search path on 2 CPUs.

``--n`` trials whose one training iteration sleeps ``--sleep`` seconds (the no-op task
of ``_common``), two at a time on a local Ray with 2 CPUs, through ``run_search``
(OptunaSearch with the study in SQLite, reused actors, a checkpoint per report,
export at the end). The theoretical minimum is ``n * sleep / 2``. Baseline in the
same run: raw Ray Tune with ``reuse_actors=True`` and its default loggers, the same
trials (sleep, one report), OptunaSearch, two at a time.

    python bench/scale.py [--n 1000] [--sleep 0.1] [--baseline-n N]

Target: rt3d wall / minimum <= 1.3.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _common


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="trials")
    parser.add_argument("--sleep", type=float, default=0.1, help="seconds per trial")
    parser.add_argument(
        "--baseline-n",
        type=int,
        default=None,
        help="trials of the raw Tune baseline (default: --n; 0 skips it)",
    )
    parser.add_argument("--quick", action="store_true", help="n=4 (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n = 4
    base_n = args.n if args.baseline_n is None else args.baseline_n
    _common.start_ray(2)
    with tempfile.TemporaryDirectory(prefix="rt3d_bench_") as tmp:
        folder = Path(tmp)
        started = time.time()
        ours = _common.run_rt3d_noop(folder, args.n, "scale", args.sleep)
        phases = _common.search_phases(folder / "runs" / "scale", started, ours)
        raw = _common.run_raw_tune(folder, base_n, "raw_scale", True, args.sleep) if base_n else 0
    floor = args.n * args.sleep / 2
    _common.figure("theoretical minimum", floor, "s", f"{args.n} x {args.sleep} s / 2 CPUs")
    _common.figure("rt3d-tune run_search wall", ours, "s", f"n={args.n}, export included")
    for name, seconds in phases.items():
        _common.figure(f"rt3d-tune {name}", seconds, "s")
    per_slot = phases["first trial start to last trial end"] * 2 / args.n
    _common.figure("rt3d-tune per trial and slot, trial phase", per_slot, "s",
                   f"the trial sleeps {args.sleep} s")
    if base_n:
        raw_floor = base_n * args.sleep / 2
        _common.figure("raw Ray Tune, reuse_actors=True, wall", raw, "s", f"n={base_n}")
        _common.ratio("raw_reuse/minimum", raw / raw_floor)
        _common.ratio("rt3d/raw_reuse (per trial)", (ours / args.n) / (raw / base_n))
    _common.ratio("rt3d/minimum", ours / floor, 1.3)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
