"""The code sandbox: every containment case ends as a counted failure with its reason, in a real subprocess."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from evalcast.data.records import ExpertRecord
from evalcast.generate import CodeExecutionScorer, SandboxConfig, run_program, run_programs, sandbox_layers
from evalcast.generate.sandbox import SANDBOX_UID_BASE

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FAST = SandboxConfig(timeout_s=10, cpu_s=5)
UNGUARDED = SandboxConfig(timeout_s=10, cpu_s=5, audit_guard=False)
LAYERS = sandbox_layers(UNGUARDED)
COUNTS_PROCESSES = "unprivileged uid" in LAYERS or "user namespace" in LAYERS


def _live_processes(*, marker: str | None = None, min_uid: int | None = None) -> list[str]:
    """Pids of live (non-zombie) processes whose command line holds ``marker`` or whose uid is >= ``min_uid``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            uid = int((proc / "status").read_text().split("Uid:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue
        hit = (marker is not None and marker in cmdline) or (min_uid is not None and uid >= min_uid)
        if hit and state != "Z":
            found.append(proc.name)
    return found


def test_layers_are_reported() -> None:
    assert {"rlimits", "process group kill", "isolated python", "throwaway cwd", "cleared env"} <= set(LAYERS)
    assert "audit guard" in sandbox_layers(FAST) and "audit guard" not in LAYERS


def test_correct_program_passes_and_failing_assert_is_counted() -> None:
    ok = run_program("def f(x):\n    return x + 1\nassert f(1) == 2\n", FAST)
    assert (ok.passed, ok.reason) == (True, "passed")
    bad = run_program("assert 1 + 1 == 3, 'arithmetic'\n", FAST)
    assert (bad.passed, bad.reason) == (False, "test failed")
    assert "arithmetic" in bad.detail and "AssertionError" in bad.output


def test_malformed_program_is_an_error_reason_not_a_crash() -> None:
    result = run_program("def f(:\n", FAST)
    assert (result.passed, result.reason) == (False, "error: SyntaxError")
    assert run_program("import sys\nsys.exit(0)\n", FAST).reason == "error: SystemExit"
    assert run_program("import os\nos._exit(0)\n", FAST).reason == "exited early"
    odd = "class E(Exception):\n    errno = 'x'\n    def __str__(self):\n        raise RuntimeError\nraise E()\n"
    assert run_program(odd, FAST).reason == "error: E"
    huge = run_program("raise ValueError('\\u00e9' * 5000)\n", FAST)  # verdict line still fits the pipe
    assert huge.reason == "error: ValueError" and huge.detail.startswith("ValueError: \u00e9")


def test_infinite_loop_hits_the_cpu_limit() -> None:
    result = run_program("while True:\n    pass\n", SandboxConfig(timeout_s=30, cpu_s=1))
    assert (result.passed, result.reason) == (False, "cpu time limit")


def test_sleeping_program_hits_the_wall_clock_limit() -> None:
    result = run_program("import time\ntime.sleep(60)\n", SandboxConfig(timeout_s=1))
    assert (result.passed, result.reason) == (False, "timeout")
    assert result.wall_s < 30


def test_huge_allocation_hits_the_memory_limit() -> None:
    result = run_program("x = bytearray(64 * 1024 ** 3)\n", FAST)
    assert (result.passed, result.reason) == (False, "memory limit")


def test_output_flood_hits_the_output_limit() -> None:
    result = run_program("while True:\n    print('x' * 1000)\n", SandboxConfig(output_bytes=10_000))
    assert (result.passed, result.reason) == (False, "output limit")
    assert len(result.output) <= 10_001


def test_fork_bomb_is_blocked_by_the_guard() -> None:
    result = run_program("import os\nwhile True:\n    os.fork()\n", FAST)
    assert (result.passed, result.reason) == (False, "blocked: process creation")
    assert run_program("import subprocess\nsubprocess.run(['true'])\n", FAST).reason == "blocked: process creation"


@pytest.mark.skipif(not COUNTS_PROCESSES, reason=f"RLIMIT_NPROC cannot count sandbox processes alone here: {LAYERS}")
def test_fork_bomb_without_guard_hits_the_process_limit() -> None:
    result = run_program("import os\nwhile True:\n    os.fork()\n", UNGUARDED)
    assert (result.passed, result.reason) == (False, "process limit")
    if os.geteuid() == 0:  # sandbox uids are ours to inspect: nothing may survive the run
        assert _live_processes(min_uid=SANDBOX_UID_BASE) == []


KILLS_DETACHED = "pid namespace" in LAYERS or "unprivileged uid" in LAYERS


@pytest.mark.parametrize("detach", [
    "", pytest.param("os.setsid()\n    ", marks=pytest.mark.skipif(
        not KILLS_DETACHED, reason="a process that leaves the group needs a pid namespace or its own uid"))])
def test_background_processes_are_killed_when_the_program_ends(detach: str) -> None:
    marker = f"{os.getpid()}.{len(detach)}17"  # unique sleep duration, visible in /proc/*/cmdline
    source = f"import os\nif os.fork() == 0:\n    {detach}os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
    result = run_program(source, UNGUARDED)
    assert result.passed, result
    assert _live_processes(marker=f"sleep {marker}") == []


def test_program_is_killed_when_evalcast_dies(tmp_path: Path) -> None:
    """The parent exits (os._exit) while a program sleeps: the supervisor sees stdin close, kills it and
    removes the working directory."""
    marker = f"{os.getpid()}.271"
    workdirs = set(Path(tempfile.gettempdir()).glob("evalcast-sandbox-*"))
    sandbox_py = Path(__file__).resolve().parents[1] / "src" / "evalcast" / "generate" / "sandbox.py"
    script = f"""
import importlib.util, os, sys, threading, time
spec = importlib.util.spec_from_file_location("sandbox_alone", {str(sandbox_py)!r})
sandbox = sys.modules["sandbox_alone"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sandbox)

def die_once_sleeping():
    while not any("sleep {marker}" in open(f"/proc/{{p}}/cmdline").read().replace(chr(0), " ")
                  for p in os.listdir("/proc") if p.isdigit() and os.path.exists(f"/proc/{{p}}/cmdline")):
        time.sleep(0.05)
    os._exit(0)

threading.Thread(target=die_once_sleeping, daemon=True).start()
sandbox.run_program("import os\\nos.execv('/bin/sleep', ['sleep', '{marker}'])\\n",
                    sandbox.SandboxConfig(timeout_s=60, audit_guard=False))
os._exit(3)
"""
    (tmp_path / "parent.py").write_text(script)  # a file, so no command line holds the marker but the program's
    assert subprocess.run([sys.executable, str(tmp_path / "parent.py")], timeout=120).returncode == 0
    deadline = time.monotonic() + 10
    while _live_processes(marker=f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _live_processes(marker=f"sleep {marker}") == []
    while set(Path(tempfile.gettempdir()).glob("evalcast-sandbox-*")) - workdirs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(Path(tempfile.gettempdir()).glob("evalcast-sandbox-*")) - workdirs == set()


def test_write_outside_the_working_directory_is_blocked(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    result = run_program(f"open({str(target)!r}, 'w').write('x')\n", FAST)
    assert (result.passed, result.reason) == (False, "blocked: write outside working dir")
    assert not target.exists()
    caught = run_program(f"try:\n    open({str(target)!r}, 'w')\nexcept Exception:\n    pass\n", FAST)
    assert caught.reason == "blocked: write outside working dir", "catching the refusal must not pass"


@pytest.mark.skipif("unprivileged uid" not in LAYERS, reason=f"no unprivileged uid here: {LAYERS}")
def test_unprivileged_uid_cannot_write_to_root_owned_paths(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    result = run_program(f"open({str(tmp_path / 'x')!r}, 'w').write('x')\n", UNGUARDED)
    assert (result.passed, result.reason) == (False, "error: PermissionError")
    assert list(tmp_path.iterdir()) == []


def test_working_directory_is_writable_and_removed_afterwards() -> None:
    result = run_program("import os\nopen('scratch.txt', 'w').write('x')\nprint(os.getcwd())\n", FAST)
    assert result.passed, result
    workdir = Path(result.output.strip())
    assert workdir.name.startswith("evalcast-sandbox-") and not workdir.exists()


def test_network_attempt_is_blocked() -> None:
    source = "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\n"
    assert run_program(source, FAST).reason == "blocked: network"


@pytest.mark.skipif("net namespace" not in LAYERS, reason=f"no network namespace here: {LAYERS}")
def test_network_namespace_has_no_route_without_the_guard() -> None:
    source = "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\n"
    result = run_program(source, UNGUARDED)
    assert (result.passed, result.reason) == (False, "error: OSError")
    assert "unreachable" in result.detail.lower()


def test_environment_is_cleared_and_python_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALCAST_TEST_SECRET", "do-not-leak")
    source = ("import os, sys\nassert 'EVALCAST_TEST_SECRET' not in os.environ\n"
              "assert sys.flags.isolated == 1\nassert os.environ['HOME'] == os.getcwd()\n"
              f"assert os.__file__ == {os.__file__!r}, os.__file__  # its own stdlib, not a fallback\n")
    result = run_program(source, FAST)
    assert result.passed, result


def test_many_programs_run_concurrently_in_order() -> None:
    sources = [f"assert {i} % 2 == 0\n" for i in range(6)]
    results = run_programs(sources, SandboxConfig(workers=3))
    assert [r.reason for r in results] == ["passed", "test failed"] * 3


def _humaneval(count: int) -> list[dict]:
    with gzip.open(DATA / "humaneval" / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for _, line in zip(range(count), fh)]


def _record(row: dict) -> ExpertRecord:
    return ExpertRecord(prompt=row["prompt"], solution=row["canonical_solution"], id=row["task_id"],
                        task="humaneval", meta={"test": row["test"], "entry_point": row["entry_point"]})


def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail() -> None:
    records = [_record(row) for row in _humaneval(4)]
    scorer = CodeExecutionScorer(FAST)
    right = scorer.score_many([(r, r.solution) for r in records])
    assert [s.reason for s in right] == ["passed"] * 4 and all(s.correct for s in right)
    # each problem scored with its neighbour's solution body, and with an empty body
    wrong = scorer.score_many([(r, records[(i + 1) % 4].solution) for i, r in enumerate(records)]
                              + [(records[0], "    pass\n")])
    assert not any(s.correct for s in wrong)
    assert wrong[-1].reason == "test failed"


def test_code_records_without_tests_are_counted_not_run() -> None:
    record = _record(_humaneval(1)[0])
    no_test = ExpertRecord(prompt=record.prompt, solution=record.solution, id="x", meta={"entry_point": "f"})
    bad_entry = ExpertRecord(prompt=record.prompt, solution=record.solution, id="y",
                             meta={"test": record.meta["test"], "entry_point": "not an identifier"})
    results = CodeExecutionScorer(FAST).score_many([(no_test, record.solution), (bad_entry, record.solution),
                                                    (record, record.solution)])
    assert [r.reason for r in results] == ["no test", "no entry point", "passed"]
