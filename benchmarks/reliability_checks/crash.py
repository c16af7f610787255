"""Crash consistency: kill -9 a training process during evaluations and run-store commits, resume, check.

A plain training loop (a 1-layer GPT-2, AdamW, 12 steps, ``monitor.step`` every 2 steps, an atomic training
checkpoint every 4, so a resume also rewinds evaluations the checkpoint did not keep) runs in a forked child.
The child is killed with SIGKILL at a kill point:

* ``history n`` / ``arrays n`` / ``json n``: inside the n-th ``write()`` to ``history.jsonl``, to an
  array file, to ``meta.json`` or a state file (half the bytes reach the file first: the worst torn write
  a kill can leave);
* ``replace n``: just before the n-th rename into the run directory;
* ``eval n``: inside the n-th evaluation, after the forward pass, before the commit;
* ``time t``: by the parent, t seconds after the start (anywhere).

Right after each kill the run directory must read as it is (what a report or dashboard would see).
Each resume loads the last training checkpoint, calls ``monitor.rewind(step)`` as a resuming loop must,
and checks the run directory: every file parses, every history line is whole (a torn last line is the
only exception, and it is skipped by readers), one record per step, every ok record's arrays load, and
the history equals the uninterrupted run's records up to the resumed step (metrics and training figures
exactly, cost timings excepted). At the end of each chain of kills the finished run must equal the
uninterrupted run. The first kill of every chain lands in the first write of meta.json, of an array file
or of the history (meta.json is written once per run, so only such a kill can reach it).

``--mutate`` breaks one guarantee on purpose (see :data:`MUTATIONS`) to show the checks catch it.
"""

from __future__ import annotations

import argparse
import builtins
import io
import json
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import contextlib

import torch

import evalcast.monitor.monitor as monitor_module
import evalcast.runs.store as store_module
from benchmarks.reliability_checks.common import batch, tiny_model, tiny_setup
from evalcast import Monitor, MonitorConfig
from evalcast.runs import Record, RunHistory, RunStore

STEPS, EVERY, CHECKPOINT_EVERY = 12, 2, 4
KINDS = ("history", "arrays", "json", "replace", "eval", "time")


@dataclass(frozen=True)
class KillPoint:
    kind: str
    n: int = 1
    delay: float = 0.0


def _in_place_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _record_before_arrays(self: RunHistory, record: Record, examples: Any = None) -> None:
    self.store.append(record)
    if examples is not None:
        self.store.save_arrays(record.step, "examples", dict(examples))
    self.invalidate()


MUTATIONS = {
    "torn_tail_kept": lambda: setattr(RunStore, "_repair_tail", lambda self: None),
    "meta_state_in_place": lambda: setattr(store_module, "_atomic_write", _in_place_write),
    "record_before_arrays": lambda: setattr(RunHistory, "append", _record_before_arrays),
    "rewind_ignored": lambda: setattr(RunStore, "rewind", lambda self, step: None),
}


# ------------------------------------------------------------------------------------------- the child
class _Counter:
    def __init__(self, kill: KillPoint | None, run_dir: Path) -> None:
        self.kill, self.run_dir, self.counts = kill, str(run_dir.resolve()), dict.fromkeys(KINDS, 0)

    def hit(self, kind: str) -> bool:
        self.counts[kind] += 1
        return self.kill is not None and self.kill.kind == kind and self.counts[kind] == self.kill.n

    def kind(self, target: Any) -> str | None:
        """``history``, ``arrays`` or ``json`` for a file of the run directory, else None."""
        try:
            path = os.readlink(f"/proc/self/fd/{target}") if isinstance(target, int) else os.path.abspath(target)
        except (OSError, TypeError):
            return None
        if not str(path).startswith(self.run_dir):
            return None
        return "history" if path.endswith(".jsonl") else "arrays" if ".npz" in path else "json"


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _TornFile:
    """A writable file of the run directory whose armed write stops halfway, then the process dies."""

    def __init__(self, fh: Any, counter: _Counter, kind: str) -> None:
        self._fh, self._counter, self._kind = fh, counter, kind

    def write(self, data: Any) -> int:
        if self._counter.hit(self._kind):
            self._fh.write(data[: max(1, len(data) // 2)])
            self._fh.flush()
            _die()
        return self._fh.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def __enter__(self) -> _TornFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._fh.__exit__(*exc)


def _arm(counter: _Counter) -> None:
    real_open, real_replace, real_local = io.open, os.replace, monitor_module.forward_local

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = real_open(file, mode, *args, **kwargs)
        kind = counter.kind(file) if any(c in mode for c in "wax+") else None
        return fh if kind is None else _TornFile(fh, counter, kind)

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if counter.kind(dst) and counter.hit("replace"):
            _die()
        real_replace(src, dst, *args, **kwargs)

    def forward_local(*args: Any, **kwargs: Any) -> Any:
        out = real_local(*args, **kwargs)
        if counter.hit("eval"):
            _die()
        return out

    builtins.open = io.open = open_  # type: ignore[assignment]
    os.replace = replace
    monitor_module.forward_local = forward_local


def _key(record: Record) -> tuple[Any, ...]:
    metrics = {k: v for k, v in record.metrics.items() if not k.startswith("evalcast/cost/")}
    return (
        record.step,
        record.status,
        record.reason,
        json.dumps(record.train, sort_keys=True),
        json.dumps(metrics, sort_keys=True),
    )


def check(run_dir: Path, reference: list[Record] | None, upto: int | None) -> list[str]:
    """Problems of the run directory (empty when it is consistent); ``upto``: compare with the reference."""
    problems = []
    store = RunStore(run_dir)
    try:
        store.read_meta()
        history = store.history()
        for record in history:
            if record.ok and store.load_arrays(record.step, "examples") is None:
                problems.append(f"step {record.step}: no per-example arrays")
    except Exception as exc:
        return [f"unreadable: {type(exc).__name__}: {exc}"]
    path = run_dir / "history.jsonl"
    lines = path.read_bytes().split(b"\n") if path.exists() else []
    for number, line in enumerate(lines[:-1], start=1):
        try:
            json.loads(line)
        except ValueError:
            problems.append(f"history line {number} is partial")
    steps = [r.step for r in history]
    if steps != sorted(set(steps)):
        problems.append(f"duplicated or unordered steps {steps}")
    if reference is not None and upto is not None:
        want = [_key(r) for r in reference if r.step <= upto]
        if [_key(r) for r in history] != want:
            problems.append(f"history mismatch up to step {upto}: {steps} vs {[k[0] for k in want]}")
    return problems


def train(
    root: Path,
    experts: Any,
    tok: Any,
    kill: KillPoint | None,
    mutation: str | None,
    reference: list[Record] | None,
    episode: int,
) -> None:
    """One training process: resume from the last checkpoint (and check), then train to the end."""
    if mutation:
        MUTATIONS[mutation]()
    run_dir, ckpt = root / "run", root / "ckpt.pt"
    torch.manual_seed(0)
    model = tiny_model(tok)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    monitor = Monitor(experts, run_dir=run_dir, config=MonitorConfig(strict=True), forecast=None)
    start = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        torch.set_rng_state(state["rng"])
        start = state["step"]
        monitor.rewind(start)
        (root / "verdicts").mkdir(exist_ok=True)
        (root / "verdicts" / f"{episode}.json").write_text(json.dumps(check(run_dir, reference, start)))
    counter = _Counter(kill, run_dir)
    _arm(counter)
    model.train()
    for step in range(start + 1, STEPS + 1):
        ids = batch(tok, step)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        monitor.step(model, step=step, every=EVERY, train={"loss": float(loss.detach())})
        if step % CHECKPOINT_EVERY == 0:
            tmp = root / "ckpt.tmp"
            torch.save(
                {"model": model.state_dict(), "opt": opt.state_dict(), "rng": torch.get_rng_state(), "step": step}, tmp
            )
            os.replace(tmp, ckpt)
    (root / "counts.json").write_text(json.dumps(counter.counts))


def episode(
    root: Path,
    setup: tuple[Any, Any],
    kill: KillPoint | None,
    mutation: str | None,
    reference: list[Record] | None,
    number: int,
) -> tuple[bool, str]:
    """Run one training process in a forked child; (killed by SIGKILL, error text if it failed)."""
    (root / "error.txt").unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            train(root, setup[1], setup[0], kill, mutation, reference, number)
        except BaseException:
            (root / "error.txt").write_text(traceback.format_exc())
            code = 1
        os._exit(code)
    if kill is not None and kill.kind == "time":
        time.sleep(kill.delay)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    error = (root / "error.txt").read_text() if code > 0 and (root / "error.txt").exists() else ""
    return code == -signal.SIGKILL, error


def reference_run(work: Path, setup: tuple[Any, Any]) -> tuple[list[Record], dict[str, int], float]:
    root = work / "reference"
    root.mkdir(parents=True)
    started = time.perf_counter()
    killed, error = episode(root, setup, None, None, None, 0)
    if killed or error:
        raise RuntimeError(f"the uninterrupted run failed: {error}")
    counts = json.loads((root / "counts.json").read_text())
    return RunStore(root / "run").history(), counts, time.perf_counter() - started


def run(
    kills: int,
    seed: int = 0,
    mutation: str | None = None,
    work: Path | None = None,
    chain_length: int = 5,
    kinds: tuple[str, ...] = KINDS,
) -> dict[str, Any]:
    """Deliver ``kills`` kill -9s over chains of runs; count corrupt directories and history mismatches."""
    work = Path(work or tempfile.mkdtemp(prefix="evalcast-crash-"))
    setup = tiny_setup(work / "cache")
    reference, counts, duration = reference_run(work, setup)
    rng = random.Random(seed)
    delivered = corrupt = mismatches = resumes = chains = 0
    failures: list[str] = []
    while delivered < kills and chains < 4 * kills:
        chains += 1
        root = work / f"chain{chains}"
        root.mkdir()
        for number in range(1, chain_length + 2):
            if number == 1:
                kill: KillPoint | None = KillPoint(
                    rng.choice([k for k in ("history", "arrays", "json") if k in kinds] or ["history"]), 1
                )
            elif number <= chain_length and delivered < kills:
                kind = rng.choice(kinds)
                kill = KillPoint(kind, rng.randint(1, max(1, counts[kind])), rng.uniform(0.0, duration))
            else:
                kill = None
            killed, error = episode(root, setup, kill, mutation, reference, number)
            verdict = root / "verdicts" / f"{number}.json"
            if verdict.exists():
                resumes += 1
                problems = json.loads(verdict.read_text())
                mismatches += any("mismatch" in p for p in problems)
                corrupt += any("mismatch" not in p for p in problems)
                failures += [f"chain {chains} resume {number}: {p}" for p in problems]
            if error:
                corrupt += 1
                failures.append(f"chain {chains} episode {number}: {error.strip().splitlines()[-1]}")
            delivered += killed
            if killed:  # what a reader (the report, a dashboard) finds while the run is down
                dead = check(root / "run", None, None)
                corrupt += bool(dead)
                failures += [f"chain {chains} after kill {number}: {p}" for p in dead]
            if not killed:
                break
        final = check(root / "run", reference, STEPS)
        mismatches += any("mismatch" in p for p in final)
        corrupt += any("mismatch" not in p for p in final)
        failures += [f"chain {chains} final: {p}" for p in final]
    return {
        "kill_points": delivered,
        "kill_resumes": resumes,
        "kill_chains": chains,
        "kill_corrupt_dirs": corrupt,
        "kill_history_mismatches": mismatches,
        "mutation": mutation,
        "failures": failures[:20],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mutate", choices=sorted(MUTATIONS))
    args = parser.parse_args()
    started = time.perf_counter()
    result = run(args.kills, args.seed, args.mutate)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
