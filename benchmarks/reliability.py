"""Reliability in one command: fuzzing, kill -9 crash consistency, hostile sandbox programs, tracker outages,
and deliberate breakage ("mutations") each harness must catch. Writes ``benchmarks/results/reliability.json``.

    python benchmarks/reliability.py            # ~10 min on two idle cores
    python benchmarks/reliability.py --quick    # fewer cases, for a smoke check

Mutations (each must make its harness report a failure): crash harness: a torn history line left in
place, meta/state written in place, the record written before its arrays, a rewind ignored; sandbox: no
rlimits (a busy loop must then end by the wall clock, not the CPU-time limit), no process-group kill and
no pid namespace under a daemon; trackers: no deadline on a hanging tracker, no guard around a raising
one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("WANDB_SILENT", "true")

from benchmarks.reliability_checks import crash, fuzz, hostile, outage
from evalcast.generate import sandbox

RESULT = Path(__file__).parent / "results" / "reliability.json"


def sandbox_mutations() -> dict[str, bool]:
    """Each weakened sandbox must let its hostile program escape or overrun (the harness sees it)."""
    caught = {}
    base = sandbox.SandboxConfig(timeout_s=5.0, cpu_s=3, memory_mb=512, workers=1)
    real_limits, real_kill = sandbox._limits, sandbox._feed_and_wait
    sandbox._plan.cache_clear()
    sandbox._limits = lambda config, count_processes: {}  # no rlimits at all
    # A busy loop must end by the CPU-time limit, not by the wall clock. (Not a fork or memory bomb: without
    # rlimits those are stopped only by the machine's own limits, and a kernel that refuses a huge
    # allocation by itself would hide the mutation.)
    weak = hostile.run(replace(base, timeout_s=base.cpu_s + 3.0), ["busy loop"])  # room for RLIMIT_CPU first
    caught["sandbox_no_rlimits"] = weak["sandbox_results"]["busy loop"]["reason"] != "cpu time limit"
    sandbox._limits = real_limits

    def no_group_kill(proc: Any, payload: bytes, timeout: float) -> bool:
        assert proc.stdin is not None
        proc.stdin.write(payload + b"\n")
        proc.stdin.flush()
        proc.wait()
        return False

    sandbox._feed_and_wait = no_group_kill
    real_kill_uid = sandbox._kill_uid
    sandbox._kill_uid = lambda uid: None
    sandbox._plan.cache_clear()
    real_plan = sandbox._plan
    no_pid_ns = ("--pid", "--fork", "--kill-child")
    sandbox._plan = lambda *a: replace(p := real_plan(*a), prefix=tuple(x for x in p.prefix if x not in no_pid_ns))
    weak = hostile.run(replace(base, audit_guard=False), ["unguarded daemon via fork"])
    caught["sandbox_no_group_kill"] = weak["sandbox_escapes"] > 0
    sandbox._feed_and_wait, sandbox._kill_uid, sandbox._plan = real_kill, real_kill_uid, real_plan
    return caught


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="skip the hostile programs and the sandbox mutations (hostile code, contained by the "
                             "sandbox): for a machine shared with work you cannot lose; sandbox keys are then null "
                             "with a note")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    started = time.perf_counter()
    out: dict[str, Any] = {"complete": False}

    def save() -> None:  # after every harness, so a stopped run still leaves what it measured
        out["seconds"] = round(time.perf_counter() - started, 1)
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps(out, indent=2) + "\n")

    out.update(fuzz.run(*(100, 50, 50) if args.quick else (800, 300, 300)))
    save()
    print("fuzz", {k: out[k] for k in ("fuzz_cases", "fuzz_unexpected", "fuzz_hangs")}, flush=True)
    kills = crash.run(10 if args.quick else 60, seed=0)
    out.update({k: kills[k] for k in ("kill_points", "kill_resumes", "kill_corrupt_dirs", "kill_history_mismatches")})
    out["kill_failures"] = kills["failures"]
    save()
    print("crash", kills, flush=True)
    if args.no_sandbox:
        out.update(sandbox_cases=None, sandbox_escapes=None,
                   sandbox_note="not run (--no-sandbox): the machine was shared with work that could not be lost")
    else:
        box = hostile.run()
        out.update(box)
        print("sandbox", box["sandbox_cases"], box["sandbox_escapes"], box["sandbox_escaped"], flush=True)
    save()
    trackers = outage.run()
    out.update(
        {k: trackers[k] for k in ("tracker_outage_runs", "tracker_outage_failed_runs", "tracker_outage_lost_metrics")}
    )
    out["tracker_outage_problems"] = trackers["problems"]
    save()
    print("outage", trackers, flush=True)
    caught: dict[str, bool] = {}
    for mutation in crash.MUTATIONS:
        result = crash.run(8 if args.quick else 16, seed=2, mutation=mutation)
        caught[mutation] = result["kill_corrupt_dirs"] + result["kill_history_mismatches"] > 0
    if not args.no_sandbox:
        caught.update(sandbox_mutations())
    for mutation, case in (
        ("tracker_no_timeout", ("tensorboard", "block")),
        ("tracker_unguarded", ("mlflow", "raise")),
    ):
        caught[mutation] = outage.run(mutation, cases=(case,))["tracker_outage_failed_runs"] > 0
    out.update(mutations=len(caught), mutations_caught=sum(caught.values()), mutation_results=caught)
    out["complete"] = True
    save()
    print(json.dumps({k: v for k, v in out.items() if not isinstance(v, (dict, list))}, indent=2))


if __name__ == "__main__":
    main()
