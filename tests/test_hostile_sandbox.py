"""Hostile completions stay contained (a few of ``benchmarks/reliability_checks/hostile.py``'s programs): no
connection, no write outside, no secret read from the home directory, nothing left in ``/proc`` when the
scorer returns (a timed-out sleeper included); a secret is read only where the sandbox documents that it
can be (the read-anywhere capability, the fallback where the mount namespace does not work)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.reliability_checks import hostile
from evalcast.generate.sandbox import SandboxConfig, SandboxError, sandbox_layers

QUICK = ["socket connect", "read home secret", "list home dir", "write outside", "daemon via fork",
         "unguarded daemon via fork", "unguarded write outside", "kill everything", "ignore SIGTERM and sleep"]


def test_hostile_programs_leave_no_evidence() -> None:
    try:
        layers = sandbox_layers(SandboxConfig())
    except SandboxError as exc:
        pytest.skip(str(exc))
    if "unprivileged uid" not in layers:
        pytest.skip("the process survivor check needs the unprivileged-uid layer (evalcast running as root)")
    result = hostile.run(SandboxConfig(timeout_s=2.0, cpu_s=3, memory_mb=512, workers=1), QUICK)
    assert result["sandbox_cases"] == len(QUICK)
    assert result["sandbox_results"]["ignore SIGTERM and sleep"]["reason"] == "timeout"
    escaped = {k: v["evidence"] for k, v in result["sandbox_results"].items() if v["evidence"]}
    # Documented fallback (evalcast.generate.sandbox): where the Python install is not world-readable and the
    # mount namespace cannot hide its parents, the sandbox uid keeps CAP_DAC_READ_SEARCH and can read any file.
    if "read-anywhere capability" in layers:
        assert "mount namespace" not in layers
        assert escaped.pop("read home secret", None) == ["read a secret"]
        assert escaped.pop("list home dir", None) == ["read a secret"]
    assert escaped == {}
