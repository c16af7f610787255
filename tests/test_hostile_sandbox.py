"""Hostile completions stay contained (a few of ``benchmarks/reliability_checks/hostile.py``'s programs): no
connection, no write outside, no secret read, nothing alive after the scorer returns."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.reliability_checks import hostile
from evalcast.generate.sandbox import SandboxConfig, SandboxError, sandbox_layers

QUICK = ["socket connect", "read home secret", "write outside", "daemon via fork", "unguarded daemon via fork",
         "unguarded write outside", "kill everything"]


def test_hostile_programs_leave_no_evidence() -> None:
    try:
        layers = sandbox_layers(SandboxConfig())
    except SandboxError as exc:
        pytest.skip(str(exc))
    if "unprivileged uid" not in layers:
        pytest.skip("the process survivor check needs the unprivileged-uid layer (evalcast running as root)")
    result = hostile.run(SandboxConfig(timeout_s=5.0, cpu_s=3, memory_mb=512, workers=1), QUICK)
    assert result["sandbox_cases"] == len(QUICK)
    assert result["sandbox_escapes"] == 0, {k: v for k, v in result["sandbox_results"].items() if v["evidence"]}
