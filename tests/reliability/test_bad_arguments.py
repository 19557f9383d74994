"""Bad command lines and bad files that are no space file's mistake: run names that escape
``--output``, output folders that cannot be written, addresses where no Ray answers, a
run another driver holds, work sizes out of bounds, files that are no files.

Each case exits 2 with one message naming the argument (or key path), no traceback, no
Ray started, within its bound in seconds; all run one after another in one fresh
interpreter (``reliability_kit.run_cases``), as a user's shell would run them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability_kit import POINTNET, check_one_clear_message, run_cases, write_space

HOLD_LOCK = """
import sys, time
from rt3d_tune.results.run_lock import RunLock
RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(300)
"""
QUICK_S = 5.0  # refused before any trial config is built (no torch import needed)
ADDRESS_S = 15.0  # the bound for an address where no Ray answers


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def not_ray() -> Iterator[int]:
    """A loopback port where a server that is not Ray answers (an HTTP/1 error page)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    server.close()


def unwritable_folder(tmp: Path) -> Path | None:
    """A folder this process cannot create files in: chmod 555, or /sys for root."""
    folder = tmp / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except OSError:
        return folder
    (folder / "probe").unlink()
    for candidate in (Path("/sys"), Path("/proc/sys")):
        try:
            (candidate / "rt3d_probe").touch()
        except OSError:
            return candidate
    return None


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory, not_ray: int
             ) -> dict[str, tuple[dict[str, Any], str, float]]:
    """name -> (what the call did, the text its error must hold, its bound in seconds)."""
    folder = tmp_path_factory.mktemp("bad_arguments")
    output = folder / "runs"
    output.mkdir()
    good = write_space(folder, "good", POINTNET, stop={"max_epochs": 1})
    a_file = folder / "a_file.txt"
    a_file.write_text("not a folder\n")
    fifo = folder / "space.fifo"
    os.mkfifo(fifo)
    huge = folder / "huge.yaml"
    huge.write_text(good.read_text() + "# padding\n" * 200_000)
    config = folder / "config.yaml"
    config.write_text(f"_base_: {POINTNET}\noptimizer:\n  type: SGD\n  lr: 0.1\n  lr: 0.2\n")

    def search(*extra: str, space: Path = good) -> list[str]:
        return ["search", str(space), "--output", str(output), *extra]

    port = closed_port()
    cases: dict[str, tuple[list[str], str, float]] = {
        "name_parent": (search("--name", "../escape"), "--name: a run name is one folder name",
                        QUICK_S),
        "name_absolute": (search("--name", str(folder / "abs")), "holds a path separator",
                          QUICK_S),
        "name_nested": (search("--name", "a/b"), "--name", QUICK_S),
        "name_dotdot": (search("--name", ".."), "'..' is not a folder name", QUICK_S),
        "name_empty": (search("--name", ""), "--name", QUICK_S),
        "output_missing_parent": (
            ["search", str(good), "--output", str(folder / "missing" / "runs")],
            f"--output: the folder {folder / 'missing'} does not exist", QUICK_S),
        "output_is_a_file": (["search", str(good), "--output", str(a_file)],
                             "is not a folder", QUICK_S),
        "output_under_a_file": (["search", str(good), "--output", str(a_file / "runs")],
                                "is not a folder", QUICK_S),
        "address_refused": (search("--address", f"127.0.0.1:{port}"),
                            f"--address: no Ray cluster answers at 127.0.0.1:{port}", ADDRESS_S),
        "address_ray_client_refused": (search("--address", f"ray://127.0.0.1:{port}"),
                                       "no Ray cluster answers", ADDRESS_S),
        "address_not_ray": (search("--address", f"127.0.0.1:{not_ray}"),
                            "but it is not Ray", ADDRESS_S),
        "address_malformed": (search("--address", "no-port-here"),
                              "--address: a Ray address is host:port", QUICK_S),
        "address_port_range": (search("--address", "127.0.0.1:70000"), "host:port", QUICK_S),
        "num_samples_huge": (search("--num-samples", "1000000000"), "--num-samples", QUICK_S),
        "max_failures_huge": (search("--max-failures", "1000000"), "--max-failures", QUICK_S),
        "space_is_a_folder": (search(space=folder), "the space file is a folder", QUICK_S),
        "space_is_a_fifo": (search(space=fifo), "not a regular file", QUICK_S),
        "space_too_big": (search(space=huge), "bytes, more than the 1,048,576", QUICK_S),
        "validate_samples_huge": (["validate", str(good), "--samples", "100000000"],
                                  "--samples", QUICK_S),
        "validate_iters_huge": (["validate", str(good), "--iters-per-epoch", "100000000000"],
                                "--iters-per-epoch", QUICK_S),
        "validate_schedule_too_long": (
            ["validate", str(write_space(folder, "long", POINTNET, stop={"max_epochs": 5000})),
             "--iters-per-epoch", "100000"], "a trial would be 500,000,000 iterations long",
            QUICK_S),
        "config_duplicate_key": (["config", "show", str(config)],
                                 "optimizer.lr: duplicate key 'lr' at line 5", QUICK_S),
        "cfg_options_nested_too_deep": (
            ["config", "show", str(POINTNET), "--cfg-options", "x=" + "[" * 200 + "]" * 200],
            "--cfg-options", QUICK_S),
        "cfg_options_index_huge": (
            ["config", "show", str(POINTNET), "--cfg-options", "workflow." + "9" * 5000 + ".1=2"],
            "list index out of range", QUICK_S),
    }
    target = unwritable_folder(folder)
    if target is not None:
        cases["output_not_writable"] = (["search", str(good), "--output", str(target / "runs")],
                                        f"cannot write in {target}", QUICK_S)
    # A driver holding the run: the second is refused with its pid, before anything else.
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(output / "held")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        cases["run_locked"] = (search("--name", "held"),
                               f"--name: another rt3d-tune search (pid {holder.pid} on", QUICK_S)
        results = run_cases(folder, {name: argv for name, (argv, _, _) in cases.items()},
                            allow_ray=False)
        env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}"}
        auto = {"address_auto_env": search("--address", "auto"),
                "ray_address_env": search()}
        results.update(run_cases(folder, auto, allow_ray=False, env=env))
    finally:
        holder.kill()
        holder.wait()
    cases["address_auto_env"] = ([], "RAY_ADDRESS (for --address auto): no Ray cluster answers",
                                 ADDRESS_S)
    cases["ray_address_env"] = ([], "RAY_ADDRESS: no Ray cluster answers", ADDRESS_S)
    return {name: (results[name], text, bound) for name, (_, text, bound) in cases.items()}


CASE_NAMES = [
    "name_parent", "name_absolute", "name_nested", "name_dotdot", "name_empty",
    "output_missing_parent", "output_is_a_file", "output_under_a_file", "output_not_writable",
    "address_refused", "address_ray_client_refused", "address_not_ray", "address_malformed",
    "address_port_range", "address_auto_env", "ray_address_env", "num_samples_huge",
    "max_failures_huge", "space_is_a_folder", "space_is_a_fifo", "space_too_big",
    "validate_samples_huge", "validate_iters_huge", "validate_schedule_too_long",
    "config_duplicate_key", "cfg_options_nested_too_deep", "cfg_options_index_huge",
    "run_locked",
]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_argument_is_one_clear_message_before_ray(outcomes, name: str):
    if name not in outcomes:
        pytest.skip("no folder here that this process cannot write in")
    res, text, bound = outcomes[name]
    err = check_one_clear_message(res)
    assert text in err, err
    assert res["seconds"] < bound, f"answered in {res['seconds']:.1f} s"
    assert not res["ray_started"] and not res["ray_initialized"] and res["children"] == []


def test_nothing_was_written_outside_the_output(outcomes):
    res, _, _ = outcomes["name_parent"]
    folder = Path(res["argv"][1]).parent
    assert not (folder / "escape").exists() and not (folder / "abs").exists()
    assert sorted(p.name for p in (folder / "runs").iterdir()) == ["held"]
