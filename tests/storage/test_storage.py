"""``rt3d_tune.storage`` on a local folder and on a real S3 server (moto, 127.0.0.1):
whole files, folders copied up and down by what changed, and the check that refuses a
storage that cannot be written with the filesystem's own reason."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from rt3d_tune.errors import ConfigError
from rt3d_tune.storage import Storage, check_storage, parse_storage, skip_parts


def test_parse_storage_makes_paths_absolute_and_keeps_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_storage("runs") == str(tmp_path / "runs")
    assert parse_storage(f"file://{tmp_path}/x") == str(tmp_path / "x")
    assert parse_storage("s3://bucket/prefix/") == "s3://bucket/prefix"
    assert parse_storage("GS://bucket") == "gs://bucket"
    for bad in ("", "  ", "s3://", "s3:///"):
        with pytest.raises(ConfigError, match="names no storage") as err:
            parse_storage(bad)
        assert err.value.key_path == "--storage"


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def _roundtrip(store: Storage, tmp_path: Path) -> None:
    local = tmp_path / "local"
    _tree(local, {"run.json": b"{}", "trials/a/config.py": b"lr = 0.1\n",
                  "trials/a/epoch_1.pth": b"\0" * 10, "ray/state.json": b"tune"})
    seen: dict[str, tuple[int, float]] = {}
    assert store.upload(local, seen=seen) == ["ray/state.json", "run.json",
                                              "trials/a/config.py", "trials/a/epoch_1.pth"]
    # Only what changed goes up again.
    assert store.upload(local, seen=seen) == []
    time.sleep(0.01)
    (local / "run.json").write_bytes(b'{"a": 1}')
    assert store.upload(local, seen=seen) == ["run.json"]
    assert store.files() == {"run.json": 8, "ray/state.json": 4, "trials/a/config.py": 9,
                             "trials/a/epoch_1.pth": 10}
    assert store.read_bytes("run.json") == b'{"a": 1}'
    assert store.exists("trials/a/config.py") and not store.exists("nothing.txt")
    # Down, with a filter: no Tune state, no checkpoints.
    back = tmp_path / "back"
    keep = skip_parts("ray", suffixes=[".pth"])
    assert store.download(back, keep=keep) == ["run.json", "trials/a/config.py"]
    assert (back / "trials/a/config.py").read_bytes() == b"lr = 0.1\n"
    assert not (back / "ray").exists() and not list(back.rglob("*.part"))
    assert store.child("trials", "a").files() == {"config.py": 9, "epoch_1.pth": 10}
    store.delete("run.json")
    store.delete("run.json")  # a missing file is no error
    assert not store.exists("run.json")


def test_local_storage_round_trip(tmp_path):
    store = Storage(parse_storage(str(tmp_path / "store")))
    assert not store.remote and store.name == "store"
    _roundtrip(store, tmp_path)


@pytest.mark.slow
def test_s3_storage_round_trip(s3_env, tmp_path):
    store = Storage(s3_env.uri("unit/roundtrip"))
    assert store.remote and store.name == "roundtrip"
    _roundtrip(store, tmp_path)


def test_local_write_is_atomic_and_leaves_no_temporary_file(tmp_path):
    store = Storage(str(tmp_path))
    store.write_bytes("a/b.txt", b"first")
    store.write_bytes("a/b.txt", b"second")
    assert (tmp_path / "a" / "b.txt").read_bytes() == b"second"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.txt"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("case, env, reason", [
    ("no_bucket", {}, "Bucket 'no-such-bucket' not found"),
    ("wrong_secret", {"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, "ACCESS_DENIED"),
    ("no_credentials", {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None},
     "no credentials were found"),
    ("unreachable", {"AWS_ENDPOINT_URL": "closed"}, "Could not connect"),
])
def test_a_storage_that_cannot_be_written_is_refused_with_its_reason(
        s3_server, monkeypatch, tmp_path, case, env, reason):
    for key, value in s3_server.env(**env).items():
        monkeypatch.setenv(key, value)
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        elif value == "closed":
            monkeypatch.setenv(key, f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws credentials either
    from rt3d_tune import storage

    storage._filesystem.cache_clear()
    uri = "s3://no-such-bucket/x" if case == "no_bucket" else s3_server.uri("checked")
    try:
        with pytest.raises(ConfigError) as err:
            check_storage(uri)
    finally:
        storage._filesystem.cache_clear()
    text = err.value.format()
    assert err.value.key_path == "--storage" and uri in text and reason in text, text
    assert "AWS_ENDPOINT_URL" in text  # the hint says what to check


@pytest.mark.slow
def test_check_storage_leaves_nothing_behind(s3_env):
    store = check_storage(s3_env.uri("clean"))
    assert store.files() == {}


def test_an_unwritable_local_storage_is_refused(tmp_path):
    if os.geteuid() == 0:
        target = "/proc/rt3d-storage"  # root writes everywhere else
    else:
        (tmp_path / "ro").mkdir(mode=0o555)
        target = str(tmp_path / "ro" / "x")
    with pytest.raises(ConfigError, match="cannot write to the storage"):
        check_storage(target)
