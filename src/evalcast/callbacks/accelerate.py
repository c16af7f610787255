"""Accelerate / plain-loop adapter: evaluate at every ``accelerator.save_state``.

``accelerator.register_save_state_pre_hook`` runs the hook inside ``save_state()`` on every rank, after
the state dicts are collected and before anything is written, so the monitor's all-rank pass and
exchange are safe there as long as ``save_state()`` is called on all ranks (Accelerate's documented
usage). Accelerate keeps no global step of its own, so the loop tells the hook where it is.

Plain loops without Accelerate call :meth:`evalcast.Monitor.step` directly::

    evaluation = monitor.step(model, step=step, every=500, tokens_seen=tokens)
    if evaluation and evaluation.decision.stop_training:
        break
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from evalcast.monitor import Monitor, TrainingContext

MIXED_PRECISION = {"bf16": torch.bfloat16, "fp16": torch.float16}


def evaluate_on_save_state(accelerator: Any, monitor: Monitor, *, step: Callable[[], int],
                           tokens_seen: Callable[[], int | None] | None = None,
                           train: Callable[[], dict[str, float]] | None = None) -> Any:
    """Register the monitor as a save-state pre-hook; returns the removable handle.

    step / tokens_seen / train: callables giving the loop's global step, training tokens so far and
    training figures (loss, lr) at the time of the save. The outcome is ``monitor.last``; a stop
    decision is ``monitor.last.decision.stop_training`` (the same on every rank).
    """

    def hook(models: list[torch.nn.Module], weights: list[dict[str, torch.Tensor]], output_dir: str) -> None:
        ctx = TrainingContext(step=int(step()), tokens_seen=tokens_seen() if tokens_seen else None,
                              autocast_dtype=MIXED_PRECISION.get(str(accelerator.mixed_precision)),
                              train=train() if train else {})
        monitor.evaluate(accelerator.unwrap_model(models[0]), ctx)

    return accelerator.register_save_state_pre_hook(hook)
