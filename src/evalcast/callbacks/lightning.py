"""Lightning adapter: ``LightningCallback`` for ``lightning.Trainer`` (checked on Lightning 2.6).

When it fires::

    setup(fit)                  run dir = <default_root_dir>/evalcast unless given; budget from max_steps
    on_train_start              resumed at global step S > 0 → the run store rewinds to S
    on_save_checkpoint          evaluate (all ranks: Lightning dumps the checkpoint on every rank); the
                                callback's state is written into that same checkpoint afterwards
    on_train_batch_start /      a ModelCheckpoint(save_weights_only=True) never calls
    on_train_end                on_save_checkpoint: its saves are noticed here (a new path in its public
                                best_model_path / last_model_path / best_k_models) and evaluated
    on_train_batch_end          evaluate when every_n_steps divides the step (if set)

Traps handled: ``save_last=True`` calls ``on_save_checkpoint`` twice per step (evaluated once);
monitor-based saves run from ``on_validation_end`` in eval mode (the monitor restores every module's
mode); ``self.log`` is forbidden there, so metrics go to the trainer's loggers directly (rank 0: W&B,
TensorBoard and MLflow through their runs, other loggers through ``log_metrics``) and to the
monitor's trackers. A stop decision sets ``trainer.should_stop`` on every rank. Limitation: a
weights-only ``ModelCheckpoint`` that rewrites one fixed path (``save_last=True`` with ``save_top_k=0``)
shows no new path, so its saves are not evaluated; use ``every_n_steps`` there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from evalcast.monitor import Budget, Evaluation, Monitor, TrainingContext
from evalcast.trackers.discover import trackers_from_lightning

logger = logging.getLogger("evalcast")

PRECISION_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16, "bf16-true": None, "16-true": None}


def find_language_model(module: nn.Module) -> nn.Module:
    """``module`` itself if it is a causal LM (has an output layer), else its first sub-module that is."""
    for candidate in (module, *module.modules()):
        getter = getattr(candidate, "get_output_embeddings", None)
        if callable(getter) and getter() is not None:
            return candidate
    raise TypeError(f"{type(module).__name__} holds no causal LM with get_output_embeddings(); pass "
                    "model_getter=lambda pl_module: ... to the evalcast callback")


class LightningCallback(Callback):
    """Runs an evalcast :class:`~evalcast.Monitor` at every checkpoint save of a ``lightning.Trainer``.

    every_n_steps: evaluate every N optimizer steps instead of at saves.
    model_getter: the causal LM inside the LightningModule (default: found by its output layer).
    tokens_per_step: training tokens per optimizer step, if constant (Lightning does not count them).
    reuse_trackers: write into the trainer's loggers (W&B run, TensorBoard writer, MLflow run, and
        ``log_metrics`` of any other logger such as CSV).
    """

    def __init__(self, monitor: Monitor, *, every_n_steps: int | None = None,
                 model_getter: Callable[[LightningModule], nn.Module] = find_language_model,
                 tokens_per_step: int | None = None, reuse_trackers: bool = True) -> None:
        self.monitor, self.every_n_steps, self.model_getter = monitor, every_n_steps, model_getter
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps}: give a whole number of steps >= 1, or None (at saves)")
        if tokens_per_step is not None and tokens_per_step < 1:
            raise ValueError(f"tokens_per_step={tokens_per_step}: give a positive token count, or None")
        self.tokens_per_step, self.reuse_trackers = tokens_per_step, reuse_trackers
        self.last: Evaluation | None = None
        self._weights_only_seen: dict[int, SavedPaths] = {}

    @property
    def state_key(self) -> str:
        # the class was named EvalcastCallback when earlier checkpoints were written: keep their key
        return "EvalcastCallback" + repr({"name": self.monitor.name})

    # ---------------------------------------------------------------- lifecycle
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if self.monitor.store is None:
            self.monitor.bind_run_dir(f"{trainer.default_root_dir}/evalcast")
        max_steps = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        max_tokens = self.monitor.budget.max_tokens
        if max_tokens is None and max_steps and self.tokens_per_step:
            max_tokens = max_steps * self.tokens_per_step
        self.monitor.set_budget(Budget(max_steps=max_steps, max_tokens=max_tokens, lr=self.monitor.budget.lr))
        if self.reuse_trackers and trainer.is_global_zero:
            self.monitor.use_framework_trackers(trackers_from_lightning(trainer))

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.global_step > 0:
            self.monitor.rewind(trainer.global_step)
        for callback in self._weights_only(trainer):
            self._weights_only_seen[id(callback)] = saved_paths(callback)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if not self.every_n_steps:
            self._evaluate(trainer, pl_module)
        checkpoint.setdefault("callbacks", {})[self.state_key] = self.state_dict()

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._notice_weights_only_saves(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._notice_weights_only_saves(trainer, pl_module)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0 and trainer.global_step > 0:
            self._evaluate(trainer, pl_module)

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Kept in the Lightning checkpoint; the run directory stays the source of truth."""
        last = self.last.record if self.last is not None else None
        return {"run_dir": str(self.monitor.run_dir) if self.monitor.run_dir else None,
                "last_step": last.step if last is not None else None, "monitor": self.monitor.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.monitor.store is None and state_dict.get("run_dir"):
            self.monitor.bind_run_dir(state_dict["run_dir"])
        self.monitor.load_state_dict(state_dict.get("monitor") or {})

    # ---------------------------------------------------------------- work
    def _weights_only(self, trainer: Trainer) -> list[ModelCheckpoint]:
        return [cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.save_weights_only]

    def _notice_weights_only_saves(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.every_n_steps:
            return
        for callback in self._weights_only(trainer):
            saved = saved_paths(callback)
            if saved != self._weights_only_seen.get(id(callback)):
                self._weights_only_seen[id(callback)] = saved
                self._evaluate(trainer, pl_module)

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule) -> None:
        step = trainer.global_step
        ctx = TrainingContext(step=step, tokens_seen=step * self.tokens_per_step if self.tokens_per_step else None,
                              epoch=float(trainer.current_epoch),
                              autocast_dtype=PRECISION_DTYPES.get(str(trainer.precision)),
                              train=_train_figures(trainer))
        self.last = evaluation = self.monitor.evaluate(self.model_getter(pl_module), ctx)
        if evaluation.decision.stop_training:
            trainer.should_stop = True


SavedPaths = tuple[str, str, tuple[str, ...]]


def saved_paths(callback: ModelCheckpoint) -> SavedPaths:
    """The checkpoint paths a ``ModelCheckpoint`` has written, from its public state (the same on every
    rank): every save sets one of them to the new file's path."""
    return callback.best_model_path, callback.last_model_path, tuple(sorted(callback.best_k_models))


def _train_figures(trainer: Trainer) -> dict[str, float]:
    """Training loss (if logged as ``train_loss``/``loss``) and the first optimizer's learning rate."""
    out: dict[str, float] = {}
    metrics = trainer.callback_metrics
    for key, name in (("train_loss", "loss"), ("loss", "loss"), ("val_loss", "val_loss")):
        value = metrics.get(key)
        if value is not None and name not in out:
            out[name] = float(value)
    if trainer.optimizers:
        out["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
    return out
