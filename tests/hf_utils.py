"""Helpers to run a real ``transformers.Trainer`` on the tiny arithmetic corpus."""

from __future__ import annotations

from transformers import Trainer, TrainingArguments

from evalcast.toy import TextDataset
from tests.conftest import training_texts


def make_trainer(model, tokenizer, out_dir, callbacks=(), max_steps: int = 12, save_steps: int = 4,
                 **args) -> Trainer:
    arguments = TrainingArguments(output_dir=str(out_dir), max_steps=max_steps, save_steps=save_steps,
                                  per_device_train_batch_size=8, learning_rate=3e-3, logging_steps=1,
                                  report_to=args.pop("report_to", []), use_cpu=True, seed=0, data_seed=0,
                                  disable_tqdm=True, save_strategy="steps", dataloader_num_workers=0,
                                  lr_scheduler_type=args.pop("lr_scheduler_type", "cosine"),
                                  warmup_steps=args.pop("warmup_steps", 2), **args)
    dataset = TextDataset(tokenizer, training_texts(256), length=48)
    return Trainer(model=model, args=arguments, train_dataset=dataset, data_collator=dataset.collate,
                   callbacks=list(callbacks))


def losses(trainer: Trainer) -> list[float]:
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]
