"""A raw FSDP2 (``fully_shard``) training loop under torchrun with ``monitor.step``.

Runs: without evalcast (the reference); with it (dropout on, batches drawn from the global torch RNG,
evaluations after steps 2, 4, 6 that draw from every RNG stream); with it and each isolation mutation
(the check must see a difference); with rank 1 failing before the forward at step 2 (every rank must skip
it and train on, unchanged). Dumps the differences each run shows against the reference, the proxies'
state dict for a single-process comparison, and, with ``inside``, raises inside the sharded forward of
rank 1 at step 2 instead (the job must end with ShardedForwardError); a third argument is then the
process-group timeout in seconds.
"""

from __future__ import annotations

import faulthandler
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from common import dump, rank, setup
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard

from evalcast import Monitor
from evalcast.stats import ModelMismatchError
from evalcast.toy import TextDataset, tiny_gpt2
from tests.conftest import training_texts
from tests.guarantee import MUTATIONS, break_isolation, differences, draw_during_evaluation, trace


def train(tok, data, monitor: Monitor | None, steps: int = 6, hook=None):
    model = tiny_gpt2(tok, n_embd=32, n_positions=64, seed=0)  # dropout 0.1 (GPT-2's default)
    random.seed(rank()), np.random.seed(rank()), torch.manual_seed(rank())  # each rank its own masks and batches
    draw_during_evaluation(model)
    for block in model.transformer.h:
        fully_shard(block)
    fully_shard(model)
    if hook is not None:  # before FSDP2's own pre-forward hook: the other rank then waits in its all-gather
        model.transformer.h[1].register_forward_pre_hook(hook, prepend=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses, evaluations = [], {}
    for step in range(1, steps + 1):
        batch = TextDataset.collate([data[int(torch.randint(len(data), (1,)))]])  # shuffled by the global RNG
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
        if monitor is not None:
            evaluation = monitor.step(model, step=step, every=2)
            if evaluation is not None:
                evaluations[step] = [evaluation.ok, evaluation.decision.reason]
    return model, trace(model, losses), evaluations


def fail_before_forward_at(step: int):
    """Rank 1's model check fails at ``step`` (a fake: a real mismatch would hit every rank alike)."""
    import evalcast.monitor.monitor as core

    check, calls = core.check_compatible, {"n": 0}

    def check_compatible(model, **kwargs):
        calls["n"] += 1
        if rank() == 1 and calls["n"] == step // 2:
            raise ModelMismatchError("injected: rank 1 is not ready")
        return check(model, **kwargs)
    return check_compatible


def main(out: Path, mode: str, pg_timeout_s: float = 0) -> None:
    if mode == "inside":  # with the process-group timeout docs/guarantees.md recommends
        faulthandler.dump_traceback_later(pg_timeout_s + 60, exit=True)  # a hang shows where it waits
        dist.init_process_group("gloo", timeout=timedelta(seconds=pg_timeout_s))
    else:
        dist.init_process_group("gloo")
    tok, experts = setup(out)
    data = TextDataset(tok, training_texts(16), length=48)
    if mode == "inside":
        def raise_inside(module, args):
            if not module.training and rank() == 1:
                print(f"injected at {time.time():.3f}", file=sys.stderr, flush=True)
                raise RuntimeError("injected failure inside the sharded forward")
        train(tok, data, Monitor(experts, run_dir=out / "inside"), steps=4, hook=raise_inside)
        dump(out, "inside", {"finished": True})  # never reached: the job ends at step 2
        return
    _, plain, _ = train(tok, data, None)
    monitor = Monitor(experts, run_dir=out / "run")
    model, watched, evaluations = train(tok, data, monitor)
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank() == 0:
        torch.save(state, out / "fsdp_state.pt")
    mutated = {}
    for mutation in MUTATIONS:
        with pytest.MonkeyPatch.context() as mp:
            break_isolation(mp, mutation)
            monitor = Monitor(experts, run_dir=out / mutation, name=mutation)
            mutated[mutation] = differences(plain, train(tok, data, monitor)[1])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("evalcast.monitor.monitor.check_compatible", fail_before_forward_at(2))
        _, faulty, fault_evaluations = train(tok, data, Monitor(experts, run_dir=out / "fault", name="fault"))
    dump(out, "fsdp", {"differences": differences(plain, watched), "losses": len(plain.losses),
                       "decisions": evaluations, "mutated": mutated,
                       "fault_differences": differences(plain, faulty), "fault_decisions": fault_evaluations})
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "guarantee", *map(float, sys.argv[3:4]))
