"""evalcast on a Hugging Face ``Trainer``: proxies at every save, anchors, probe, forecasts, report.

    python examples/hf_trainer.py --out /tmp/evalcast-hf                   # one process
    torchrun --nproc_per_node 2 examples/hf_trainer.py --out /tmp/evalcast-hf   # DDP (gloo on CPU)

With your own model: load it and its tokenizer with ``from_pretrained``, build the ``ExpertSet`` from
your expert file (``ExpertSet.from_file("experts.jsonl", tokenizer, fields={...})``), keep the rest.
"""

from __future__ import annotations

import argparse
import os

import torch
from transformers import Trainer, TrainingArguments

from evalcast import AnchorConfig, ExpertSet, Monitor, MonitorConfig
from evalcast.callbacks.transformers import TransformersCallback
from evalcast.generate import DecodeConfig
from evalcast.tasks import CHARSET, get_task, training_texts
from evalcast.toy import TextDataset, char_tokenizer, tiny_gpt2


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="evalcast-hf")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    tokenizer = char_tokenizer(CHARSET)
    mix = {"add": 1.0, "sort": 1.0, "chain": 1.0}
    experts = ExpertSet([r for t in mix for r in get_task(t).sample(40, seed=0, negatives=True)], tokenizer,
                        progress=False)
    monitor = Monitor(experts, config=MonitorConfig(pad_multiple=16),  # run dir: <output_dir>/evalcast
                      anchors=AnchorConfig(every=3, questions=60,
                                           decode=DecodeConfig(max_new_tokens=96, stop=("\n\n",), progress=False)))
    training = TrainingArguments(
        output_dir=args.out, max_steps=args.steps, save_steps=20, per_device_train_batch_size=32,
        learning_rate=3e-3, lr_scheduler_type="cosine", warmup_steps=10, logging_steps=20, report_to=[],
        include_num_input_tokens_seen="non_padding", use_cpu=not torch.cuda.is_available(),
        ddp_backend="gloo" if "WORLD_SIZE" in os.environ and not torch.cuda.is_available() else None)
    dataset = TextDataset(tokenizer, training_texts(mix, args.steps * 32, seed=0), 128)
    trainer = Trainer(model=tiny_gpt2(tokenizer, n_embd=64, n_head=4, n_positions=128), args=training,
                      train_dataset=dataset, data_collator=dataset.collate)
    trainer.add_callback(TransformersCallback(monitor, trainer=trainer))  # bound: logs into report_to and trainer.log
    trainer.train()
    if trainer.is_world_process_zero():
        from evalcast.report import write_report

        print(f"report: {write_report(monitor.run_dir)}")


if __name__ == "__main__":
    main()
