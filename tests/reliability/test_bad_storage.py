"""``rt3d-tune search --storage`` that cannot work: each is refused with exit 2, one
message naming ``--storage`` (or the space file's ``storage:``) and the filesystem's
reason, before Ray starts, and no run directory is left."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from reliability_kit import POINTNET, check_one_clear_message, run_cases, write_space

pytestmark = pytest.mark.slow


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def outcomes(s3_server, tmp_path_factory) -> dict[str, tuple[dict, str]]:
    folder = tmp_path_factory.mktemp("bad_storage")
    output = folder / "runs"
    output.mkdir()
    good = write_space(folder, "good", POINTNET, stop={"max_epochs": 1})
    in_space = write_space(folder, "in_space", POINTNET, stop={"max_epochs": 1},
                           storage="s3://no-such-bucket/runs")

    def search(*extra: str, space: Path = good) -> list[str]:
        return ["search", str(space), "--output", str(output), "--name", "x", *extra]

    home = folder / "home"
    home.mkdir()
    groups = {  # the client variables of each group of cases
        "with_keys": (s3_server.env(HOME=str(home)), {
            "no_bucket": (search("--storage", "s3://no-such-bucket/runs"),
                          "--storage: cannot write to the storage s3://no-such-bucket/runs"),
            "space_storage": (search(space=in_space),
                              "storage: cannot write to the storage s3://no-such-bucket"),
            "empty": (search("--storage", "s3://"), "--storage: names no storage"),
            "unknown_scheme": (search("--storage", "nosuchfs://x/y"), "--storage"),
        }),
        "wrong_secret": (s3_server.env(AWS_SECRET_ACCESS_KEY="wrong", HOME=str(home)), {
            "wrong_secret": (search("--storage", s3_server.uri("r")), "ACCESS_DENIED"),
        }),
        "no_credentials": (s3_server.env(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None,
                                         HOME=str(home)), {
            "no_credentials": (search("--storage", s3_server.uri("r")),
                               "no credentials were found"),
        }),
        "dead_endpoint": (s3_server.env(AWS_ENDPOINT_URL=f"http://127.0.0.1:{_closed_port()}",
                                        HOME=str(home)), {
            "dead_endpoint": (search("--storage", s3_server.uri("r")), "Could not connect"),
        }),
    }
    import os

    results: dict[str, tuple[dict, str]] = {}
    for env, cases in groups.values():
        base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        done = run_cases(folder, {name: argv for name, (argv, _) in cases.items()},
                         allow_ray=False, env={**base, **env})
        results.update({name: (done[name], text) for name, (_, text) in cases.items()})
    results["left"] = ({"runs": sorted(p.name for p in output.iterdir())}, "")
    return results


@pytest.mark.parametrize("name", ["no_bucket", "space_storage", "empty", "unknown_scheme",
                                  "wrong_secret", "no_credentials", "dead_endpoint"])
def test_bad_storage_is_one_clear_message_before_ray(outcomes, name):
    res, text = outcomes[name]
    err = check_one_clear_message(res)
    assert text in err, err
    assert not res["ray_started"] and not res["ray_initialized"] and res["children"] == []
    assert res["seconds"] < 30, res["seconds"]


def test_refused_storage_leaves_no_run_directory(outcomes):
    assert outcomes["left"][0]["runs"] == []
