"""``results.jsonl`` is never left with a line that breaks its readers: every event goes out
as one whole line (a failed write is cut back, a torn tail is cut off before the next
append), and the reader skips a torn last line with a warning instead of failing."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from rt3d_tune.results import recorder

EVENTS = [
    {"event": "start", "trial_id": "t1", "params": {"optimizer.lr": 0.01}, "time": 1.0},
    {"event": "result", "trial_id": "t1", "result": {"accuracy": 0.5, "training_iteration": 1}},
    {"event": "end", "trial_id": "t1", "status": "TERMINATED", "error": None, "time": 2.0},
    {"event": "start", "trial_id": "t2", "params": {"optimizer.lr": 0.02}, "time": 3.0},
]


def write_events(path: Path, events: list[dict]) -> None:
    for event in events:
        recorder.append_event(path, event)


def cut_mid_line(path: Path) -> int:
    """Truncate the file in the middle of its last line; return the cut line's length."""
    data = path.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: start + (len(data) - start) // 2])
    return len(data) - start


def test_a_torn_last_line_is_skipped_with_a_warning(tmp_path):
    path = tmp_path / recorder.RESULTS_JSONL
    write_events(path, EVENTS)
    cut_mid_line(path)
    with pytest.warns(UserWarning, match="skipped a torn last line"):
        records = recorder.load_records(tmp_path, finished=True)
    assert list(records) == ["t1"]  # t2's start was the torn line
    assert records["t1"].status == recorder.TERMINATED
    assert records["t1"].metric("accuracy") == 0.5


def test_corrupted_lines_elsewhere_are_counted(tmp_path):
    path = tmp_path / recorder.RESULTS_JSONL
    good = [json.dumps(event) for event in EVENTS]
    lines = [good[0], "{not json", good[1], '{"event": "result", "trial_id": "t1"}', "[1, 2]",
             good[2]]
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match=r"skipped 3 unreadable line\(s\) \(line 2, 4, 5\)"):
        events = recorder.read_events(path)
    assert events == EVENTS[:3]


def test_the_next_append_cuts_a_torn_tail_instead_of_gluing_to_it(tmp_path):
    path = tmp_path / recorder.RESULTS_JSONL
    write_events(path, EVENTS)
    size = cut_mid_line(path)
    with pytest.warns(UserWarning, match=f"cut a torn last line \\({size // 2} bytes"):
        recorder.append_event(path, EVENTS[3])
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == EVENTS  # every line whole, none glued


def test_a_write_that_fails_part_way_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / recorder.RESULTS_JSONL
    write_events(path, EVENTS[:2])
    before = path.read_bytes()
    real_write = os.write

    def disk_fills_up(fd: int, data: bytes) -> int:
        real_write(fd, data[: len(data) // 2])  # half of the line reaches the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_fills_up)
    with pytest.raises(OSError, match="No space left"):
        recorder.append_event(path, EVENTS[2])
    monkeypatch.setattr(os, "write", real_write)
    assert path.read_bytes() == before
    recorder.append_event(path, EVENTS[2])
    assert recorder.read_events(path) == EVENTS[:3]
