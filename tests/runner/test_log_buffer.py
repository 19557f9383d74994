"""LogBuffer: count-weighted averages over the latest n values (mmcv semantics)."""

from __future__ import annotations

import pytest

from rt3d_tune.runner.log_buffer import LogBuffer


def test_weighted_average_of_the_latest_n() -> None:
    buf = LogBuffer()
    buf.update({"loss": 1.0, "acc": 0.5}, count=1)
    buf.update({"loss": 4.0}, count=3)
    buf.update({"loss": 2.0}, count=2)
    buf.average(2)
    assert buf.ready
    assert buf.output["loss"] == pytest.approx((4 * 3 + 2 * 2) / 5)
    assert buf.output["acc"] == 0.5
    buf.average()
    assert buf.output["loss"] == pytest.approx((1 + 12 + 4) / 6)


def test_clear_output_keeps_history_and_clear_drops_it() -> None:
    buf = LogBuffer()
    buf.update({"loss": 1.0})
    buf.average()
    buf.clear_output()
    assert not buf.ready and not buf.output and buf.val_history["loss"] == [1.0]
    buf.clear()
    assert not buf.val_history and not buf.n_history


def test_bad_input() -> None:
    with pytest.raises(TypeError):
        LogBuffer().update([1.0])
    with pytest.raises(ValueError):
        LogBuffer().average(-1)
