"""Fault injection under torchrun with a DDP training loop: an exception on rank 1 only (step 2), rank 1
stalling past the timeout (step 4), then a healthy evaluation (step 6). Every rank must take the same
branch and training must finish."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from common import dump, rank, setup
from torch.nn.parallel import DistributedDataParallel

from evalcast import Monitor, MonitorConfig
from evalcast.toy import TextDataset, tiny_gpt2
from tests.conftest import training_texts


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    tok, experts = setup(out)
    data = TextDataset(tok, training_texts(16), length=48)
    model = tiny_gpt2(tok, n_embd=32, n_positions=64, seed=0)
    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(ddp.parameters(), lr=3e-3)
    monitor = Monitor(experts, run_dir=out / "run", config=MonitorConfig(timeout_s=3.0))
    fault = {"step": 0}

    def inject(module, args):
        if rank() == 1 and fault["step"] == 2:
            raise RuntimeError("injected failure on rank 1")
        if rank() == 1 and fault["step"] == 4:
            time.sleep(8)  # past the 3 s timeout

    model.transformer.h[0].register_forward_pre_hook(lambda m, a: inject(m, a) if not m.training else None)
    outcomes, started = {}, time.time()
    for step in range(1, 7):
        batch = TextDataset.collate([data[(step * 2 + rank()) % len(data)]])
        loss = ddp(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        fault["step"] = step
        evaluation = monitor.step(ddp, step=step, every=2)
        if evaluation is not None:
            outcomes[step] = [evaluation.ok, evaluation.decision.reason]
    dump(out, "faults", {"outcomes": outcomes, "seconds": time.time() - started, "steps": step})
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
