"""Helpers to run a real ``transformers.Trainer`` on the tiny arithmetic corpus."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainingArguments

from tests.conftest import training_texts


class TextDataset(Dataset):
    def __init__(self, tokenizer, n: int = 256, length: int = 48) -> None:
        self.items = []
        for text in training_texts(n):
            ids = tokenizer(text)["input_ids"][: length - 1] + [tokenizer.eos_token_id]
            ids = ids + [tokenizer.pad_token_id] * (length - len(ids))
            labels = [i if i != tokenizer.pad_token_id else -100 for i in ids]
            self.items.append({"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                               "attention_mask": torch.tensor([int(i != tokenizer.pad_token_id) for i in ids])})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def make_trainer(model, tokenizer, out_dir, callbacks=(), max_steps: int = 12, save_steps: int = 4,
                 **args) -> Trainer:
    arguments = TrainingArguments(output_dir=str(out_dir), max_steps=max_steps, save_steps=save_steps,
                                  per_device_train_batch_size=8, learning_rate=3e-3, logging_steps=1,
                                  report_to=args.pop("report_to", []), use_cpu=True, seed=0, data_seed=0,
                                  disable_tqdm=True, save_strategy="steps", dataloader_num_workers=0,
                                  lr_scheduler_type=args.pop("lr_scheduler_type", "cosine"),
                                  warmup_steps=args.pop("warmup_steps", 2), **args)
    return Trainer(model=model, args=arguments, train_dataset=TextDataset(tokenizer), callbacks=list(callbacks))


def losses(trainer: Trainer) -> list[float]:
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]
