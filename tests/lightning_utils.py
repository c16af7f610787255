"""A LightningModule around a tiny HF GPT-2, and a deterministic data module, for real Lightning runs."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from evalcast.toy import TextDataset, tiny_gpt2
from tests.conftest import training_texts


class TinyLM(L.LightningModule):
    def __init__(self, tokenizer, lr: float = 3e-3, dropout: float = 0.0) -> None:
        super().__init__()
        # no dropout by default: Lightning checkpoints do not carry RNG states, so resumed dropout masks differ
        self.model = tiny_gpt2(tokenizer, n_layer=2, n_embd=32, n_head=2, n_positions=64, seed=0,
                               resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)
        self.lr = lr
        self.losses: list[float] = []

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch).loss
        self.losses.append(float(loss.detach()))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.model(**batch).loss)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def loader(tokenizer, n: int = 32, batch_size: int = 8, shuffle: bool = False) -> DataLoader:
    """Shuffling draws each epoch's order from the global torch RNG."""
    dataset = TextDataset(tokenizer, training_texts(n), length=48)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=dataset.collate)


def trainer(root, callbacks=(), max_steps: int = 12, **kwargs) -> L.Trainer:
    kwargs.setdefault("enable_checkpointing", True)
    devices = kwargs.pop("devices", 1)
    return L.Trainer(default_root_dir=str(root), max_steps=max_steps, accelerator="cpu", devices=devices,
                     callbacks=list(callbacks), logger=kwargs.pop("logger", False), enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, deterministic=True, **kwargs)
