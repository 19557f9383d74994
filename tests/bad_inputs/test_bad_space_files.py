"""Every broken space file under tests/bad_inputs/: ``rt3d-tune validate`` exits 2 with one
clear message that holds the file's ``# expect:`` text, and no traceback, within the
``# seconds:`` of its second line when it has one (the inputs that would explode)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rt3d_tune import cli

HERE = Path(__file__).resolve().parent
CASES = sorted(HERE.glob("*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: ...'"
    return first[len("# expect: "):]


def _seconds(path: Path) -> float:
    second = (path.read_text(encoding="utf-8").splitlines() + [""])[1]
    return float(second[len("# seconds: "):]) if second.startswith("# seconds: ") else 60.0


def test_corpus_is_large_enough():
    assert len(CASES) >= 90
    assert sum(_seconds(path) < 60 for path in CASES) >= 20  # the bounded-size cases


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_validate_rejects_bad_space(path: Path, capsys: pytest.CaptureFixture[str]):
    expected = _expected(path)
    started = time.perf_counter()
    rc = cli.main(["validate", str(path), "--samples", "2"])
    elapsed = time.perf_counter() - started
    out, err = capsys.readouterr()
    assert rc == 2, out + err
    assert elapsed < _seconds(path), f"answered in {elapsed:.1f} s"
    assert expected in err, err
    assert "Traceback" not in out + err
    assert "error:" in err
