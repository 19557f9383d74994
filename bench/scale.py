"""Scale: many short trials through rt3d-tune's search path, against raw Tune, on 2 CPUs.

Runs, on one local Ray (2 CPUs, loopback only), both sides at the same ``--n``:

* rt3d-tune: ``run_search`` over ``--n`` no-op trials whose one training iteration
  sleeps ``--sleep`` seconds (``_common.NOOP_CONFIG``), two at a time: space file,
  OptunaSearch, reused actors, one evaluation and one report per trial, export at the
  end. Its phases (start-up, trials, export) come from the recorded trial start and end
  times.
* the fair baseline (``_common.RAW_FAIR``): raw ``Tuner.fit`` with the environment
  variables the search sets (``TUNE_ENV``), ``reuse_actors=True``, OptunaSearch, two at
  a time, each trial importing torch, stepping a one-weight SGD optimizer, sleeping
  ``--sleep`` seconds and reporting once.

Outside ``--quick``, a one-trial run of each side goes first, unmeasured
(``_common.warm_up``), so that one-off imports in the driver count for neither. The
theoretical minimum of each side is ``n * sleep / 2``.

    python bench/scale.py [--n 1000] [--sleep 0.1]

Prints FIGURE lines and RATIO lines; the last line is ``RATIO rt3d/raw_fair`` (wall
against wall, same n). Target: rt3d-tune <= 1.1x the fair baseline.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _common


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="trials (each side)")
    parser.add_argument("--sleep", type=float, default=0.1, help="seconds per trial")
    parser.add_argument("--quick", action="store_true", help="n=4 (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n = 4
    _common.start_ray(2)
    with tempfile.TemporaryDirectory(prefix="rt3d_bench_") as tmp:
        folder = Path(tmp)
        if not args.quick:
            _common.warm_up(folder)
        started = time.time()
        ours = _common.run_rt3d_noop(folder, args.n, "scale", args.sleep)
        phases = _common.search_phases(folder / "runs" / "scale", started, ours)
        raw = _common.run_raw_tune(folder, args.n, "raw_scale", _common.RAW_FAIR, args.sleep)
    floor = args.n * args.sleep / 2
    _common.figure("theoretical minimum", floor, "s", f"{args.n} x {args.sleep} s / 2 CPUs")
    _common.figure("rt3d-tune run_search wall", ours, "s", f"n={args.n}, export included")
    for name, seconds in phases.items():
        _common.figure(f"rt3d-tune {name}", seconds, "s")
    per_slot = phases["first trial start to last trial end"] * 2 / args.n
    _common.figure("rt3d-tune per trial and slot, trial phase", per_slot, "s",
                   f"the trial sleeps {args.sleep} s")
    _common.figure(f"{_common.RAW_FAIR.name}, wall", raw, "s", f"n={args.n}")
    _common.ratio("raw_fair/minimum", raw / floor)
    _common.ratio("rt3d/minimum", ours / floor)
    _common.ratio("rt3d/raw_fair", ours / raw, 1.1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
