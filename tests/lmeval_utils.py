"""What the lm-evaluation-harness cross-checks share: a tiny char-level GPT-2 trained briefly and saved, and
lm-eval run offline, in-process, on a task YAML over a local JSONL, its samples keyed by question id."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from evalcast.toy import char_tokenizer, tiny_gpt2


def train_and_save(folder: Path, lines: Callable[[random.Random], list[str]], steps: int, width: int) -> Path:
    """``steps`` AdamW steps on batches of ``lines(rng)`` (each padded/cut to ``width`` characters), saved
    with ``save_pretrained`` (model and tokenizer) in ``folder``; the global RNG is left untouched."""
    tokenizer = char_tokenizer()
    rng = random.Random(0)
    with torch.random.fork_rng():
        model = tiny_gpt2(tokenizer, n_layer=2, n_embd=48, n_head=2, n_positions=64, seed=0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
        model.train()
        for _ in range(steps):
            batch = torch.tensor([tokenizer(line[:width].ljust(width))["input_ids"] for line in lines(rng)])
            loss = model(input_ids=batch, labels=batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def offline(monkeypatch: pytest.MonkeyPatch, scratch: Path) -> None:
    """No hub access, and a throwaway HF home."""
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("HF_HOME", str(scratch / "hf_home"))


def lmeval_samples(folder: Path, task: str, rows: Sequence[dict[str, Any]], task_body: str,
                   scratch: Path) -> dict[str, dict[str, Any]]:
    """lm-eval's logged samples (by ``id``) of the saved model on ``rows``: a task named ``task`` reading them
    from a local JSONL, ``task_body`` the rest of its YAML (output type, doc_to_*, metrics)."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    data = scratch / f"{task}.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tasks = scratch / "tasks"
    tasks.mkdir()
    (tasks / f"{task}.yaml").write_text(f"""task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
  cache_dir: {scratch / "datasets_cache"}
test_split: test
{task_body}metadata: {{version: 1.0}}
""")
    lm = HFLM(pretrained=str(folder), dtype="float32", device="cpu", batch_size=8)
    out = lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=TaskManager(include_path=str(tasks)),
                                  log_samples=True, verbosity="WARNING")
    assert out is not None
    return {s["doc"]["id"]: s for s in out["samples"][task]}
