"""Malformed input: ~100 generated expert files, configurations and damaged run directories each end in a
clear ValueError-family error naming the file (or load as documented); the full run is
``benchmarks/reliability_checks/fuzz.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.reliability_checks import fuzz
from evalcast.data import ExpertSetError, load_records


def test_a_hundred_malformed_inputs_end_in_clear_errors(tmp_path: Path) -> None:
    result = fuzz.run(experts_n=50, configs_n=25, runs_n=25, seed=11, work=tmp_path)
    assert result["fuzz_cases"] == 100
    assert result["fuzz_unexpected"] == 0 and result["fuzz_hangs"] == 0, result["fuzz_unexpected_kinds"]
    assert result["fuzz_outcomes"].get("expert_file/expected", 0) > 25  # most generated files are refused


@pytest.mark.parametrize(
    "data", [b'{"prompt": "a\xff", "solution": "b"}\n', b'{"prompt": "a", "solution": "\\ud800"}\n']
)
def test_invalid_utf8_and_lone_surrogates_name_the_line(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"prompt": "a", "solution": "b"}\n' + data)
    with pytest.raises(ExpertSetError, match=rf"{path}:2"):
        load_records(path)


def test_the_fuzzer_counts_an_unclear_error_as_unexpected() -> None:
    """The companion: a case raising an error that names no file is not counted as handled."""

    def case() -> None:
        raise ValueError("something went wrong")

    case.names = "/some/file.jsonl"  # type: ignore[attr-defined]
    assert fuzz.classify(case).startswith("unexpected:ValueError")

    def crash() -> None:
        raise KeyError("x")

    assert fuzz.classify(crash).startswith("unexpected:KeyError")
