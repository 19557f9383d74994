"""Where user input becomes a path or an address: run names stay one folder, output and work
folders are checked by writing, checkpoint file names stay in their folder, and an
address is probed (a refused, silent or foreign port is refused; a real GCS passes)."""

from __future__ import annotations

import socket
import time

import pytest

from rt3d_tune.config.paths import check_file_name, check_run_name, check_writable_folder
from rt3d_tune.errors import ConfigError
from rt3d_tune.search import address


@pytest.mark.parametrize("name", ["run-1", "quickstart_lr.v2", "é"])
def test_plain_run_names_pass(name):
    assert check_run_name(name) == name


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../x", "/abs", " x", "a\0b", "x" * 300])
def test_run_names_that_are_paths_are_refused(name):
    with pytest.raises(ConfigError, match="a run name is one folder name") as info:
        check_run_name(name)
    assert info.value.key_path == "--name"


def test_writable_folder_checks_by_writing(tmp_path):
    assert check_writable_folder(tmp_path / "new", "--output") == tmp_path / "new"
    assert not (tmp_path / "new").exists()  # nothing is created by the check
    assert list(tmp_path.iterdir()) == []  # and its probe file is gone
    with pytest.raises(ConfigError, match="does not exist"):
        check_writable_folder(tmp_path / "a" / "b", "--output")
    assert check_writable_folder(tmp_path / "a" / "b", "work_dir", parents=True)
    (tmp_path / "f").write_text("")
    for path in (tmp_path / "f", tmp_path / "f" / "x"):
        with pytest.raises(ConfigError, match="is not a folder"):
            check_writable_folder(path, "--output", parents=True)


@pytest.mark.parametrize("name", ["../../x_{}.pth", "/tmp/x_{}.pth", "sub/x_{}.pth", ".."])
def test_checkpoint_file_names_stay_in_their_folder(name):
    from rt3d_tune.runner.hooks.checkpoint import CheckpointHook

    with pytest.raises(ConfigError, match="must be a file name") as info:
        CheckpointHook(interval=1, filename_tmpl=name)
    assert info.value.key_path == "checkpoint_config.filename_tmpl"
    assert check_file_name("ckpt_{}.pth", "x") == "ckpt_{}.pth"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_nothing_to_probe_without_an_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert address.check_ray_address(None) is None
    assert address.check_ray_address("local") is None
    assert address.resolve_address("anyscale://cluster") is None  # its own client checks it


def test_auto_reads_ray_address_then_the_address_file(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.setattr(address, "_local_raylet_gcs", lambda: None)
    monkeypatch.setenv("RAY_ADDRESS", "10.1.2.3:6379")
    assert address.resolve_address("auto").source == "RAY_ADDRESS (for --address auto)"
    monkeypatch.delenv("RAY_ADDRESS")
    with pytest.raises(ConfigError, match="no running Ray cluster found") as info:
        address.resolve_address("auto")
    assert info.value.key_path == "--address" and "ray start --head" in info.value.hint
    file = tmp_path / "ray" / "ray_current_cluster"
    file.parent.mkdir()
    port = closed_port()
    file.write_text(f"127.0.0.1:{port}\n")
    started = time.monotonic()
    with pytest.raises(ConfigError, match=f"no Ray cluster answers at 127.0.0.1:{port}") as info:
        address.check_ray_address("auto")
    assert info.value.key_path == f"{file} (for --address auto)"
    assert time.monotonic() - started < 2


def test_a_silent_port_is_refused_within_the_timeouts():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()  # accepts (the kernel does) and never says a word
        started = time.monotonic()
        with pytest.raises(ConfigError, match="but it is not Ray"):
            address.check_ray_address(f"127.0.0.1:{server.getsockname()[1]}",
                                      answer_timeout=1.0)
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("text", ["nohostport", "host:", ":6379", "host:0", "host:65536",
                                  "host:６３７９", "ray://host"])
def test_malformed_addresses_are_refused(text):
    with pytest.raises(ConfigError, match="a Ray address is host:port"):
        address.resolve_address(text)


def test_ipv6_and_ray_client_addresses_parse():
    assert address.resolve_address("[::1]:6379").host == "::1"
    target = address.resolve_address("ray://head.example:10001")
    assert (target.host, target.port) == ("head.example", 10001)


@pytest.mark.ray
def test_a_real_gcs_passes_the_probe(ray_local):
    gcs = ray_local.get_runtime_context().gcs_address
    target = address.check_ray_address(gcs)
    assert target is not None and f"{target.host}:{target.port}" == gcs
