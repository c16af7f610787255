"""Shared fixtures: a character tokenizer, tiny models from config, a small expert set, training data."""

from __future__ import annotations

import os
import random

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_SILENT", "true")

import pytest
import torch

from evalcast.data import ExpertSet
from evalcast.toy import arithmetic_records, char_tokenizer, tiny_gpt2

torch.set_num_threads(1)


def training_texts(n: int = 256, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        a, b = rng.randint(1, 49), rng.randint(1, 49)
        op, value = rng.choice([("+", a + b), ("-", a - b)])
        texts.append(f"what is {a}{op}{b}?\n{a}{op}{b}={value}\n#### {value}")
    return texts


@pytest.fixture(scope="session")
def tok():
    return char_tokenizer()


@pytest.fixture
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def experts(tok, cache_dir):
    return ExpertSet(arithmetic_records(), tok, cache_dir=cache_dir, progress=False)


@pytest.fixture
def model(tok):
    return tiny_gpt2(tok, n_layer=2, n_embd=32, n_head=2, n_positions=64)
