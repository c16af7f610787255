"""Crash consistency: kill -9 during evaluations and run-store commits, resume, and the run directory is
whole and equal to the uninterrupted run (a few kill points of ``benchmarks/reliability_checks/crash.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.reliability_checks import crash
from evalcast.runs import Record, RunStore

DETERMINISTIC = ("history", "arrays", "json", "replace", "eval")  # no timed kills: the same points every run


def test_kills_during_commits_leave_a_whole_run_equal_to_the_uninterrupted_one(tmp_path: Path) -> None:
    result = crash.run(6, seed=3, work=tmp_path, kinds=DETERMINISTIC)
    assert result["kill_points"] == 6 and result["kill_resumes"] >= 1
    assert result["kill_corrupt_dirs"] == 0 and result["kill_history_mismatches"] == 0, result["failures"]


def test_the_harness_catches_a_torn_line_left_in_place(tmp_path: Path) -> None:
    result = crash.run(6, seed=3, mutation="torn_tail_kept", work=tmp_path, kinds=("history",))
    assert result["kill_corrupt_dirs"] > 0


def test_a_torn_last_line_is_cut_off_before_the_next_append(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = RunStore(tmp_path)
    store.append(Record(step=1, metrics={"evalcast/all/nll": 1.5}))
    history = tmp_path / "history.jsonl"
    history.write_bytes(history.read_bytes() + b'{"format_version": 1, "step": 2, "met')
    assert [r.step for r in RunStore(tmp_path).history()] == [1]  # readers skip it
    RunStore(tmp_path).append(Record(step=3))
    assert "torn last line" in caplog.text
    assert [r.step for r in RunStore(tmp_path).history()] == [1, 3]
    whole = history.read_bytes()
    history.write_bytes(whole[:-1])  # a whole last line that lost only its newline is kept
    RunStore(tmp_path).append(Record(step=4))
    assert [r.step for r in RunStore(tmp_path).history()] == [1, 3, 4]
