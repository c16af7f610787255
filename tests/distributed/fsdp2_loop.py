"""A raw FSDP2 (``fully_shard``) training loop under torchrun with ``monitor.step``: losses with and without
evalcast, proxies at the end, and the full state dict for a single-process comparison."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from common import dump, rank, setup
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard

from evalcast import Monitor
from evalcast.toy import TextDataset, tiny_gpt2
from tests.conftest import training_texts


def train(tok, data, monitor: Monitor | None, steps: int = 6):
    model = tiny_gpt2(tok, n_embd=32, n_positions=64, seed=0)
    for block in model.transformer.h:
        fully_shard(block)
    fully_shard(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses, evaluations = [], {}
    for step in range(1, steps + 1):
        batch = TextDataset.collate([data[(step * 2 + rank()) % len(data)]])
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
        if monitor is not None:
            evaluation = monitor.step(model, step=step, every=3)
            if evaluation is not None:
                evaluations[step] = evaluation.ok
    return model, losses, evaluations


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    tok, experts = setup(out)
    data = TextDataset(tok, training_texts(16), length=48)
    _, plain, _ = train(tok, data, None)
    monitor = Monitor(experts, run_dir=out / "run")
    model, watched, evaluations = train(tok, data, monitor)
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank() == 0:
        torch.save(state, out / "fsdp_state.pt")
    dump(out, "fsdp", {"plain": plain, "watched": watched, "decisions": evaluations})
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
