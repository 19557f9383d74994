"""Every broken space file under tests/bad_inputs/: ``rt3d-tune validate`` exits 2 with one
clear message that holds the file's ``# expect:`` text, and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from rt3d_tune import cli

HERE = Path(__file__).resolve().parent
CASES = sorted(HERE.glob("*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: ...'"
    return first[len("# expect: "):]


def test_corpus_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_validate_rejects_bad_space(path: Path, capsys: pytest.CaptureFixture[str]):
    expected = _expected(path)
    rc = cli.main(["validate", str(path), "--samples", "2"])
    out, err = capsys.readouterr()
    assert rc == 2, out + err
    assert expected in err, err
    assert "Traceback" not in out + err
    assert "error:" in err
