"""Scoring saved checkpoints after the fact (``evalcast score``): the same monitor, fed from disk.

Checkpoints are loaded with the ``from_pretrained`` calls users make, ordered by training step (HF's
``trainer_state.json``, else the number in the directory name), and evaluated one by one into a run
directory, with the generative evaluation as an anchor at every checkpoint when asked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from evalcast.data.expert_set import ExpertSet
from evalcast.generate import DecodeConfig, ScorerSpec
from evalcast.monitor import AnchorConfig, Budget, Monitor, MonitorConfig, TrainingContext


@dataclass(frozen=True)
class SavedCheckpoint:
    """A checkpoint directory and what its trainer state says about it."""

    path: Path
    step: int
    tokens_seen: int | None
    max_steps: int | None


def read_checkpoint(path: str | Path) -> SavedCheckpoint:
    """Step and tokens from ``trainer_state.json`` when present, else the last number in the name."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a saved model (no config.json)")
    state_file = path / "trainer_state.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        return SavedCheckpoint(path, int(state["global_step"]), state.get("num_input_tokens_seen") or None,
                               state.get("max_steps") or None)
    numbers = re.findall(r"\d+", path.name)
    if not numbers:
        raise ValueError(f"cannot tell the training step of {path}: no trainer_state.json and no number in its name")
    return SavedCheckpoint(path, int(numbers[-1]), None, None)


def score_checkpoints(checkpoints: Sequence[str | Path], experts: ExpertSet, run_dir: str | Path, *,
                      generate: bool = False, questions: int = 256, decode: DecodeConfig | None = None,
                      device: str = "cpu", dtype: torch.dtype | None = None,
                      config: MonitorConfig = MonitorConfig(), progress: bool = True,
                      scorer: ScorerSpec | None = None) -> Monitor:
    """Evaluate every checkpoint (by increasing step) into ``run_dir``; returns the monitor.

    ``scorer`` judges the generated completions (as ``AnchorConfig.scorer``)."""
    from transformers import AutoModelForCausalLM

    saved = sorted((read_checkpoint(c) for c in checkpoints), key=lambda c: c.step)
    steps = [c.step for c in saved]
    if len(set(steps)) != len(steps):
        raise ValueError(f"two checkpoints share a step: {steps}")
    anchors = AnchorConfig(every=1, questions=questions, decode=decode or DecodeConfig(progress=False),
                           scorer=scorer) \
        if generate else None
    monitor = Monitor(experts, run_dir=run_dir, config=config, anchors=anchors,
                      budget=Budget(max_steps=max((c.max_steps or 0) for c in saved) or None))
    for checkpoint in tqdm(saved, desc="evalcast: checkpoints", disable=not progress):
        kwargs: dict[str, Any] = {} if dtype is None else {"dtype": dtype}
        model = AutoModelForCausalLM.from_pretrained(checkpoint.path, **kwargs).to(device)
        monitor.evaluate(model, TrainingContext(step=checkpoint.step, tokens_seen=checkpoint.tokens_seen))
        del model
    return monitor
