"""How many confirmation seeds the verdict needs: the rate at which a real gain is called
"better", against the runs it costs.

Trains the base config and one changed config (``--lr-factor`` times its LR) at the base
config's full length with seeds 0..S-1, each pair on the same seed (common random
numbers, as the search and its confirmation train them). From those runs: the seed
spread of one run (the sample std over seeds, averaged over the two configs) and the
spread of the paired differences. Then, for a true gain of one seed spread, the
probability that the verdict's paired 95% t interval over n pairs lies above zero
(the noncentral t distribution, with the measured spread of paired differences), for
n = 2..8, beside the confirmation runs n pairs cost (n - 1 new seeds, the search's own
pair being the first, times top_k + 1 configs). Usage::

    python bench/verdict_seeds.py [--config configs/pointnet/pointnet_shapes.py]
        [--seeds 6] [--lr-factor 0.5] [--top-k 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch
from _power import print_rates

from rt3d_tune.config import Config
from rt3d_tune.runner.builder import build_runner
from rt3d_tune.space.sampling import apply_overrides


def final_metric(cfg: Config, metric: str, work_dir: str) -> float:
    """The metric after training ``cfg`` to its end (one thread, CPU)."""
    runner = build_runner(cfg, work_dir=work_dir, device="cpu")
    runner.run()
    return float(runner.eval_results[metric])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/pointnet/pointnet_shapes.py")
    parser.add_argument("--metric", default="accuracy")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--lr-factor", type=float, default=0.5)
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = Config.fromfile(args.config)
    changed = apply_overrides(base, {"optimizer.lr": base.optimizer.lr * args.lr_factor})
    values: dict[str, list[float]] = {"base": [], "changed": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for name, cfg in (("base", base), ("changed", changed)):
                run = apply_overrides(cfg, {"seed": seed})
                values[name].append(final_metric(run, args.metric, f"{tmp}/{name}{seed}"))
                print(f"{name} seed {seed}: {args.metric} {values[name][-1]:.4f}", flush=True)
    spread = statistics.fmean(statistics.stdev(v) for v in values.values())
    diffs = [c - b for c, b in zip(values["changed"], values["base"])]
    diff_spread = statistics.stdev(diffs)
    effect = spread / diff_spread
    print(f"FIGURE seed spread of one run = {spread:.4f} {args.metric} "
          f"(std over {args.seeds} seeds, mean of 2 configs); paired differences' std = "
          f"{diff_spread:.4f} (mean difference {statistics.fmean(diffs):+.4f})")
    print_rates(effect, args.top_k)


if __name__ == "__main__":
    main()
