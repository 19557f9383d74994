"""What keeping a run in S3 costs: the same search with its run in a local folder and
with ``--storage s3://...`` on an S3 server on this machine (moto, 127.0.0.1).

Each run is ``rt3d-tune search SPACE`` as a user's shell runs it (its own embedded Ray,
a fresh process), the two kinds alternating, ``--repeats`` times each; the minimum of
each is kept. What the S3 run adds per trial: every trial's folder stored before each of
its reports and at its end, Tune's checkpoints and experiment state through pyarrow's
S3 filesystem, the driver's files uploaded as results come in, and the trials' folders
copied down for the export.

    python bench/storage.py [--space search_spaces/quickstart.yaml] [--repeats 1]
    python bench/storage.py --quick      # 2 one-epoch PointNet trials (the smoke test)

Prints FIGURE lines (seconds, trials, MiB stored) and ends with
``RATIO s3/local``. Target: at most 1.1x the local run's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from s3_server import start_s3_server  # noqa: E402  (the tests' S3 server)
from space_files import write_space  # noqa: E402

DRIVER = "import sys\nfrom rt3d_tune import cli\ncli.console_main(sys.argv[1:])\n"


def search(space: Path, output: Path, name: str, env: dict[str, str],
           extra: list[str]) -> tuple[float, int]:
    """(wall seconds, trials recorded) of one ``rt3d-tune search``."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", DRIVER, "search", str(space), "--output",
                           str(output), "--name", name, *extra], env=env, cwd=output,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"the search failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    results = output / name / "results.jsonl"
    starts = {json.loads(line)["trial_id"] for line in results.read_text().splitlines()
              if '"event": "start"' in line}
    confirm = output / name / "confirm.jsonl"
    if confirm.exists():
        starts |= {json.loads(line)["trial_id"] for line in confirm.read_text().splitlines()
                   if '"event": "start"' in line}
    return wall, len(starts)


def stored_mib(server, prefix: str) -> float:
    import boto3

    s3 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                      aws_access_key_id=server.key_id, aws_secret_access_key=server.secret)
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=server.bucket,
                                                               Prefix=prefix):
        total += sum(obj["Size"] for obj in page.get("Contents", []))
    return total / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default=str(REPO / "search_spaces" / "quickstart.yaml"))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--num-samples", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    space = Path(args.space).resolve()
    samples = ["--num-samples", str(args.num_samples)] if args.num_samples else []
    folder = Path(tempfile.mkdtemp(prefix="rt3d_bench_storage_"))
    if args.quick:
        space = write_space(folder, "quick", REPO / "configs" / "pointnet" / "pointnet_shapes.py",
                            stop={"max_epochs": 1}, search={
                                "algorithm": "random", "num_samples": 2, "seed": 0,
                                "baseline": False, "confirm": False})
    server = start_s3_server(folder / "moto.log")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
           **server.env(), **_common.LOOPBACK_ENV}
    local: list[float] = []
    stored: list[float] = []
    trials = 0
    try:
        for repeat in range(args.repeats):
            wall, trials = search(space, folder, f"local{repeat}", env, samples)
            local.append(wall)
            wall, s3_trials = search(space, folder, f"s3{repeat}", env, [
                *samples, "--storage", server.uri("bench")])
            stored.append(wall)
            if s3_trials != trials:
                raise SystemExit(f"the runs differ: {trials} trials local, {s3_trials} in S3")
        mib = stored_mib(server, "bench/s30/")
    finally:
        server.stop()
    best_local, best_s3 = min(local), min(stored)
    note = f"{space.name}, {trials} trials and confirmation runs, min of {args.repeats}"
    _common.figure("search, run in a local folder", best_local, "s", note)
    _common.figure("search, run kept in S3 (moto on 127.0.0.1)", best_s3, "s", note)
    _common.figure("S3 cost per trial", (best_s3 - best_local) / max(trials, 1), "s/trial")
    _common.figure("stored in S3", mib, "MiB", "one run: Tune state, checkpoints, trials")
    _common.ratio("s3/local", best_s3 / best_local, target=1.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
