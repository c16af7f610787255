"""Tracker outage: W&B, MLflow and TensorBoard backends that raise, or hang, on every call.

For each backend and each failure (``raise``: a ``ConnectionError``; ``block``: the call never returns),
a plain training loop (a 1-layer GPT-2, 10 steps, ``monitor.step`` every 2) runs in a forked child
with the real tracker whose client is patched at its server-facing entry points (``wandb.init``; every
``MlflowClient`` call; every ``SummaryWriter.add_*``). Checked: training reaches its last step within a
deadline; every tracker fan-out call returns within ``tracker_timeout_s`` (+1 s); every metric of every
checkpoint is in the run directory (the same names as a run without trackers); the outage is logged at
ERROR at most twice per tracker (the failure with its traceback, and the note that repeats go to DEBUG),
not once per step.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch

from benchmarks.reliability_checks.common import batch, tiny_model, tiny_setup
from evalcast import Monitor, MonitorConfig
from evalcast.runs import RunStore
from evalcast.trackers import base as tracker_base

STEPS, EVERY, TIMEOUT_S, DEADLINE_S = 10, 2, 0.5, 60.0
BACKENDS, FAILURES = ("wandb", "mlflow", "tensorboard"), ("raise", "block")


def _broken(failure: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        if failure == "block":
            threading.Event().wait()
        raise ConnectionError("tracker backend unreachable (simulated outage)")

    return call


def _tracker(backend: str, failure: str, root: Path) -> Any:
    """The real tracker with its client patched to fail on every call."""
    if backend == "wandb":
        import wandb

        from evalcast.trackers.wandb import WandbTracker

        wandb.init = _broken(failure)
        return WandbTracker(init={"mode": "offline", "dir": str(root)})
    if backend == "mlflow":
        from mlflow import MlflowClient

        from evalcast.trackers.mlflow import MlflowTracker

        for name in dir(MlflowClient):
            if not name.startswith("_") and callable(getattr(MlflowClient, name)):
                setattr(MlflowClient, name, _broken(failure))
        return MlflowTracker(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    from torch.utils.tensorboard import SummaryWriter

    from evalcast.trackers.tensorboard import TensorBoardTracker

    for name in dir(SummaryWriter):
        if name.startswith("add_") or name in ("flush", "close"):
            setattr(SummaryWriter, name, _broken(failure))
    return TensorBoardTracker(log_dir=root / "tb")


def _no_timeout(self: Any, fn: Any, args: Any, kwargs: Any, timeout: float) -> None:
    fn(*args, **kwargs)


MUTATIONS = {
    "tracker_no_timeout": lambda: setattr(tracker_base._Lane, "call", _no_timeout),
    "tracker_unguarded": lambda: setattr(
        tracker_base.CompositeTracker,
        "_each",
        lambda self, method, *a, **k: [getattr(t, method)(*a, **k) for t in self.trackers],
    ),
}


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def scenario(
    root: Path, setup: tuple[Any, Any], backend: str | None, failure: str, mutation: str | None
) -> dict[str, Any]:
    """One training run (in this process); what it measured."""
    if mutation:
        MUTATIONS[mutation]()
    tok, experts = setup
    errors = _Errors()
    logging.getLogger("evalcast").addHandler(errors)
    trackers = [] if backend is None else [_tracker(backend, failure, root)]
    monitor = Monitor(
        experts,
        run_dir=root / "run",
        trackers=trackers,
        forecast=None,
        config=MonitorConfig(tracker_timeout_s=TIMEOUT_S),
    )
    longest = 0.0
    real_each = monitor.trackers._each

    def timed_each(method: str, *args: Any, **kwargs: Any) -> None:
        nonlocal longest
        started = time.perf_counter()
        try:
            real_each(method, *args, **kwargs)
        finally:
            longest = max(longest, time.perf_counter() - started)

    monitor.trackers._each = timed_each  # type: ignore[method-assign]
    torch.manual_seed(0)
    model = tiny_model(tok)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    last = 0
    for step in range(1, STEPS + 1):
        ids = batch(tok, step)
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
        monitor.step(model, step=step, every=EVERY)
        last = step
    monitor.close()
    history = RunStore(root / "run").history()
    return {
        "last_step": last,
        "longest_call_s": longest,
        "error_logs": len(errors.messages),
        "metrics": {
            r.step: sorted(k for k in r.metrics if not k.startswith("evalcast/cost/")) for r in history if r.ok
        },
    }


def _forked(
    root: Path, setup: tuple[Any, Any], backend: str | None, failure: str, mutation: str | None
) -> dict[str, Any] | None:
    """Run a scenario in a child killed at the deadline; None when it did not finish (hung or crashed)."""
    out = root / "result.json"
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            out.write_text(json.dumps(scenario(root, setup, backend, failure, mutation)))
        except BaseException:
            (root / "error.txt").write_text(traceback.format_exc())
            code = 1
        os._exit(code)
    started = time.perf_counter()
    while time.perf_counter() - started < DEADLINE_S:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return json.loads(out.read_text()) if out.exists() else None


def run(
    mutation: str | None = None,
    work: Path | None = None,
    cases: tuple[tuple[str, str], ...] = tuple((b, f) for b in BACKENDS for f in FAILURES),
) -> dict[str, Any]:
    work = Path(work or tempfile.mkdtemp(prefix="evalcast-outage-"))
    setup = tiny_setup(work / "cache")
    (work / "clean").mkdir()
    clean = _forked(work / "clean", setup, None, "raise", None)
    assert clean is not None, "the run without trackers failed"
    runs = failed = lost = 0
    problems: list[str] = []
    for backend, failure in cases:
        root = work / f"{backend}-{failure}"
        root.mkdir()
        runs += 1
        result = _forked(root, setup, backend, failure, mutation)
        if result is None:
            failed += 1
            lost += sum(len(v) for v in clean["metrics"].values())
            error = root / "error.txt"
            why = error.read_text().strip().splitlines()[-1] if error.exists() else f"no end within {DEADLINE_S:g} s"
            problems.append(f"{backend}/{failure}: training did not finish: {why}")
            continue
        missing = sum(
            len(set(names) - set(result["metrics"].get(step, []))) for step, names in clean["metrics"].items()
        )
        lost += missing
        bad = [f"stopped at step {result['last_step']}"] if result["last_step"] != STEPS else []
        bad += (
            [f"a tracker call took {result['longest_call_s']:.2f} s"]
            if result["longest_call_s"] > TIMEOUT_S + 1
            else []
        )
        bad += [f"{result['error_logs']} ERROR logs (reported per step)"] if result["error_logs"] > 2 else []
        bad += [f"{missing} metrics missing from the run directory"] if missing else []
        failed += bool(bad)
        problems += [f"{backend}/{failure}: {b}" for b in bad]
    return {
        "tracker_outage_runs": runs,
        "tracker_outage_failed_runs": failed,
        "tracker_outage_lost_metrics": lost,
        "mutation": mutation,
        "problems": problems,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutate", choices=sorted(MUTATIONS))
    args = parser.parse_args()
    print(json.dumps(run(args.mutate), indent=2))


if __name__ == "__main__":
    main()
