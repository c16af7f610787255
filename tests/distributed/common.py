"""Shared by the multi-process scripts: the same tokenizer, expert set and data on every rank."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from evalcast.data import ExpertSet  # noqa: E402
from evalcast.toy import arithmetic_records, char_tokenizer  # noqa: E402

torch.set_num_threads(1)


def setup(out: Path):
    """Tokenizer and expert set (cached on disk by whichever rank gets there first)."""
    tok = char_tokenizer()
    experts = ExpertSet(arithmetic_records(), tok, cache_dir=out / "cache", progress=False)
    return tok, experts


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def dump(out: Path, name: str, payload: dict) -> None:
    (out / f"{name}.rank{rank()}.json").write_text(json.dumps(payload))
