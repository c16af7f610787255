"""A plain PyTorch loop with Accelerate: evalcast evaluates at every ``accelerator.save_state``.

Single process:   python examples/accelerate_loop.py --out /tmp/evalcast-accelerate
Two CPU processes: torchrun --nproc_per_node 2 examples/accelerate_loop.py --out /tmp/evalcast-accelerate
(``Accelerator(cpu=True)`` on a machine without GPUs; drop it on GPUs.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration
from torch.utils.data import DataLoader

from evalcast import AnchorConfig, Budget, ExpertSet, Monitor, MonitorConfig
from evalcast.callbacks.accelerate import evaluate_on_save_state
from evalcast.generate import DecodeConfig
from evalcast.tasks import CHARSET, get_task, training_texts
from evalcast.toy import TextDataset, char_tokenizer, tiny_gpt2


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="evalcast-accelerate")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--save-every", type=int, default=20)
    args = parser.parse_args()
    out = Path(args.out)
    project = ProjectConfiguration(project_dir=str(out), automatic_checkpoint_naming=True, total_limit=2)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), project_config=project)
    tokenizer = char_tokenizer(CHARSET)
    mix = {"add": 1.0, "sort": 1.0}
    experts = ExpertSet([r for t in mix for r in get_task(t).sample(24, seed=0, negatives=True)], tokenizer,
                        cache_dir=out / "cache", progress=False)
    monitor = Monitor(experts, run_dir=out / "evalcast", config=MonitorConfig(pad_multiple=16),
                      budget=Budget(max_steps=args.steps),
                      anchors=AnchorConfig(every=2, questions=16,
                                           decode=DecodeConfig(max_new_tokens=48, stop=("\n\n",), progress=False)))
    model = tiny_gpt2(tokenizer, n_embd=48, n_positions=128, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    dataset = TextDataset(tokenizer, training_texts(mix, args.steps * 16 * accelerator.num_processes, seed=0), 96)
    data = DataLoader(dataset, batch_size=16, collate_fn=dataset.collate)
    model, optimizer, data = accelerator.prepare(model, optimizer, data)
    state = {"step": 0}
    evaluate_on_save_state(accelerator, monitor, step=lambda: state["step"],
                           tokens_seen=lambda: state["step"] * 16 * 96 * accelerator.num_processes)
    for batch in data:
        loss = model(**batch).loss
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        state["step"] += 1
        if state["step"] % args.save_every == 0:
            accelerator.save_state()  # on every rank: evalcast's pass runs inside it
            if monitor.last is not None and monitor.last.decision.stop_training:
                break
        if state["step"] >= args.steps:
            break
    if accelerator.is_main_process:
        print(json.dumps([{"step": r.step, "status": r.status,
                           "nll": r.metrics.get("evalcast/all/nll")} for r in monitor.history()]))
    accelerator.end_training()


if __name__ == "__main__":
    main()
