"""Shared pieces of the reliability harnesses: a tiny expert set, a tiny model, a deterministic data stream."""

from __future__ import annotations

import os
import random
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from evalcast.data import ExpertSet
from evalcast.toy import arithmetic_records, char_tokenizer, tiny_gpt2

torch.set_num_threads(1)


def tiny_setup(cache: Path) -> tuple[object, ExpertSet]:
    """The character tokenizer and an expert set of 16 rows (cached under ``cache``)."""
    tok = char_tokenizer()
    return tok, ExpertSet(arithmetic_records(16), tok, cache_dir=cache, progress=False)


def tiny_model(tok: object) -> torch.nn.Module:
    return tiny_gpt2(tok, n_layer=1, n_embd=32, n_head=2, n_positions=64)


def batch(tok: object, step: int, size: int = 4) -> torch.Tensor:
    """The training batch of ``step`` (a pure function of the step, so a resumed run sees the same data)."""
    rng = random.Random(step)
    texts = []
    for _ in range(size):
        a, b = rng.randint(1, 49), rng.randint(1, 49)
        texts.append(f"what is {a}+{b}?\n{a}+{b}={a + b}\n#### {a + b}")
    ids = tok(texts, padding="max_length", max_length=40, truncation=True, return_tensors="pt")["input_ids"]
    return ids
