"""Real multi-process runs: torchrun (HF Trainer, FSDP2, fault injection) and Lightning DDP, 2 CPU processes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from evalcast import ExpertSet, Monitor
from evalcast.generate._sandbox_procs import parent, pids
from evalcast.runs import RunStore
from evalcast.toy import arithmetic_records, tiny_gpt2
from tests.guarantee import MUTATIONS

SCRIPTS = Path(__file__).resolve().parent / "distributed"
pytestmark = pytest.mark.multiprocess
#: Process-group timeout of the inside-the-forward run (the option docs/guarantees.md recommends).
PG_TIMEOUT_S = 45


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(script: str, out: Path, *args: str, torchrun: bool = True, timeout: int = 240,
           succeed: bool = True) -> subprocess.CompletedProcess:
    """Run ``script`` on 2 processes; past ``timeout`` s every process it started is killed and the test fails
    (so a hung job never hangs the suite)."""
    repo = SCRIPTS.parents[1]  # this checkout's evalcast (not an installed one), and its tests package
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(repo / "src"), str(repo)])}
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), str(SCRIPTS / script), str(out), *args]
    else:
        cmd = [sys.executable, str(SCRIPTS / script), str(out), *args]
        env["MASTER_PORT"] = str(free_port())
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        stdout, stderr = proc.communicate()
        pytest.fail(f"{script} {' '.join(args)} still running after {timeout} s (killed)\n{stderr[-6000:]}")
    done = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    assert (done.returncode == 0) == succeed, done.stdout[-4000:] + done.stderr[-6000:]
    return done


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it: torchrun starts each rank in a session of its own, out of
    reach of a process-group kill, and ranks orphaned by their agent wait for its store until the timeout."""
    children: dict[int | None, list[int]] = {}
    for process in pids():
        children.setdefault(parent(process), []).append(process)
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def results(out: Path, name: str) -> list[dict]:
    return [json.loads((out / f"{name}.rank{r}.json").read_text()) for r in range(2)]


def single_process_metrics(experts_dir: Path, tok, state_dict, tmp_path) -> dict:
    experts = ExpertSet(arithmetic_records(), tok, cache_dir=experts_dir, progress=False)
    model = tiny_gpt2(tok, n_embd=32, n_positions=64)
    model.load_state_dict(state_dict)
    return Monitor(experts, run_dir=tmp_path / "single").evaluate(model, 0).metrics


def assert_close_metrics(multi: dict, single: dict) -> None:
    keys = [k for k in single if not k.startswith("evalcast/cost")]
    assert len(keys) > 100
    for key in keys:
        assert multi[key] == pytest.approx(single[key], rel=1e-5, abs=1e-6, nan_ok=True), key


def test_hf_trainer_under_torchrun(tmp_path, tok):
    launch("hf_ddp.py", tmp_path)
    rank0, rank1 = results(tmp_path, "hf")
    assert rank0["world"] == 2
    for rank in (rank0, rank1):  # the guarantee, and its mutation companions
        assert rank["differences"] == [] and rank["losses"] == 8
        assert {k: bool(v) for k, v in rank["mutated"].items()} == dict.fromkeys(MUTATIONS, True)
    records = RunStore(tmp_path / "run").history()
    assert [r.step for r in records] == [4, 8]
    state = load_file(str(tmp_path / "watched" / "checkpoint-8" / "model.safetensors"))
    state["lm_head.weight"] = state["transformer.wte.weight"]
    single = single_process_metrics(tmp_path / "cache", tok, state, tmp_path)
    assert_close_metrics(records[-1].metrics, single)
    assert rank1["decisions"] == rank0["decisions"] == {"4": True, "8": True}


def test_fsdp2_loop_is_invisible_and_skips_on_every_rank_when_one_is_not_ready(tmp_path, tok):
    launch("fsdp2_loop.py", tmp_path)
    for rank in results(tmp_path, "fsdp"):
        # the guarantee (losses, parameter shards, gradients, modes, RNG states), and its mutation companions
        assert rank["differences"] == [] and rank["losses"] == 6
        assert {k: bool(v) for k, v in rank["mutated"].items()} == dict.fromkeys(MUTATIONS, True)
        assert rank["decisions"] == {"2": [True, ""], "4": [True, ""], "6": [True, ""]}
        # rank 1 failed before the forward at step 2: every rank skipped it, trained on, unchanged
        assert rank["fault_decisions"]["2"] == [False, "rank 1: ModelMismatchError: injected: rank 1 is not ready"]
        assert rank["fault_decisions"]["4"] == rank["fault_decisions"]["6"] == [True, ""]
        assert rank["fault_differences"] == []
    records = RunStore(tmp_path / "run").history()
    assert [r.step for r in records] == [2, 4, 6]
    state = torch.load(tmp_path / "fsdp_state.pt")
    assert_close_metrics(records[-1].metrics, single_process_metrics(tmp_path / "cache", tok, state, tmp_path))


def test_a_failure_inside_a_sharded_forward_ends_the_job(tmp_path):
    """Rank 1's model raises inside the FSDP2 forward of an evaluation while rank 0 waits in that forward's
    all-gather: rank 1 raises ShardedForwardError (training on would pair its next collectives with rank
    0's) and exits; the job then ends well before the process-group timeout (docs/guarantees.md)."""
    done = launch("fsdp2_loop.py", tmp_path, "inside", str(PG_TIMEOUT_S), succeed=False, timeout=PG_TIMEOUT_S + 150)
    ended = time.time()
    assert "[rank1]: evalcast.monitor.evaluation.ShardedForwardError" in done.stderr
    assert "injected failure inside the sharded forward" in done.stderr
    failed_at = float(re.search(r"injected at (\d+\.\d+)", done.stderr).group(1))
    assert ended - failed_at < PG_TIMEOUT_S  # ended by the failure, not by the process-group timeout
    assert not list(tmp_path.glob("inside.rank*.json"))  # neither rank went on to finish training


def test_fault_on_one_rank_and_a_stalled_rank_skip_on_every_rank(tmp_path):
    launch("faults.py", tmp_path)
    rank0, rank1 = results(tmp_path, "faults")
    assert rank0["steps"] == rank1["steps"] == 6  # training finished on both ranks
    for outcomes in (rank0["outcomes"], rank1["outcomes"]):
        assert [outcomes[s][0] for s in ("2", "4", "6")] == [False, False, True]
    assert "injected failure on rank 1" in rank0["outcomes"]["2"][1] == rank1["outcomes"]["2"][1]
    assert "rank 1: no result within 3 s" in rank0["outcomes"]["4"][1]
    records = RunStore(tmp_path / "run").history()
    assert [(r.step, r.status) for r in records] == [(2, "skipped"), (4, "skipped"), (6, "ok")]


def test_lightning_ddp(tmp_path, tok):
    launch("lightning_ddp.py", tmp_path, "plain", torchrun=False)
    launch("lightning_ddp.py", tmp_path, "evalcast", torchrun=False)
    for r in range(2):
        plain = json.loads((tmp_path / f"lightning_plain.rank{r}.json").read_text())
        watched = json.loads((tmp_path / f"lightning_watched.rank{r}.json").read_text())
        assert watched["world"] == 2 and plain["losses"] == watched["losses"] and len(plain["losses"]) == 8
        assert watched["decisions"] == {"4": True, "8": True}
    records = RunStore(tmp_path / "run").history()
    assert [r.step for r in records] == [4, 8]
    checkpoint = torch.load(sorted((tmp_path / "ckpt").glob("*step=8*.ckpt"))[0], weights_only=False)
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()}
    assert_close_metrics(records[-1].metrics, single_process_metrics(tmp_path / "cache", tok, state, tmp_path))


def test_accelerate_example_under_torchrun(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(SCRIPTS.parents[1] / "examples" / "accelerate_loop.py"), "--out", str(tmp_path), "--steps", "40"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-6000:]
    records = RunStore(tmp_path / "evalcast").history()
    assert [(r.step, r.status) for r in records] == [(20, "ok"), (40, "ok")]
    assert records[0].anchor is not None and records[0].metrics["evalcast/cost/tokens_scored"] > 0
