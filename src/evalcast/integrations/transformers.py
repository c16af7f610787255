"""Hugging Face ``Trainer`` adapter: ``EvalcastCallback``.

When it fires (transformers ≥ 4.46, checked on 5.23)::

    Trainer.__init__        on_init_end    → the callback finds its Trainer (to log through it)
    train()                 on_train_begin → run dir = <output_dir>/evalcast unless given; budget from
                                             max_steps and the LR schedule; resume from step S rewinds
                                             the run store to S
    every optimizer step    on_step_end    → evaluate when every_n_steps divides the step (if set)
    after each checkpoint   on_save        → evaluate (default): the checkpoint directory is already
                                             written, and on_log/on_evaluate of that step came before

``on_save`` runs on every rank under DDP/FSDP/DeepSpeed, so the monitor's all-rank forward pass and
exchange are safe there. Metrics go into the runs the ``report_to`` integrations opened (W&B,
TensorBoard, MLflow: never a second run) under ``evalcast/...``, into the monitor's own trackers and
run directory, and, when no tracker is reused, the headline metrics into the Trainer's own log stream
(``trainer.log``: console, ``log_history`` and any other reporter). A decision to stop sets
``control.should_training_stop``.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from evalcast.monitor import Evaluation, Monitor, TrainingContext
from evalcast.monitor.config import Budget
from evalcast.proxy.aggregate import is_headline
from evalcast.trackers.discover import trackers_from_hf_trainer

logger = logging.getLogger("evalcast")

REUSED_REPORTERS = {"wandb", "tensorboard", "mlflow", "none"}
TRAIN_KEYS = {"loss": "loss", "learning_rate": "lr", "grad_norm": "grad_norm", "eval_loss": "val_loss"}


class EvalcastCallback(TrainerCallback):
    """Runs an evalcast :class:`~evalcast.Monitor` at every checkpoint save of a HF ``Trainer``.

    every_n_steps: evaluate every N optimizer steps instead of at saves.
    reuse_trackers: write everything (scalars, forecast charts, tables, alerts) into the runs the
        Trainer's ``report_to`` integrations opened (W&B run, TensorBoard writer, MLflow run).
    log_to_trainer: which metrics also go through ``trainer.log`` (console, ``log_history`` and every
        ``report_to`` tracker, W&B under ``train/evalcast/...``): ``"headline"``, ``"all"``, ``"none"``,
        or ``"auto"``: the headline metrics when some ``report_to`` integration is not written to directly
        (anything but W&B, TensorBoard, MLflow), else none (no duplicates).
    """

    def __init__(self, monitor: Monitor, *, every_n_steps: int | None = None, reuse_trackers: bool = True,
                 log_to_trainer: str = "auto", trainer: Trainer | None = None) -> None:
        if log_to_trainer not in ("auto", "headline", "all", "none"):
            raise ValueError(f"log_to_trainer={log_to_trainer!r}: use 'auto', 'headline', 'all' or 'none'")
        self.monitor, self.every_n_steps, self.log_to_trainer = monitor, every_n_steps, log_to_trainer
        self.reuse_trackers = reuse_trackers
        self.trainer = trainer
        self.last: Evaluation | None = None

    def bind(self, trainer: Trainer) -> EvalcastCallback:
        """Attach to ``trainer`` explicitly (needed only if the callback was added after construction)."""
        self.trainer = trainer
        return self

    # ---------------------------------------------------------------- events
    def on_init_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self.trainer = self.trainer or _calling_trainer()

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self.trainer = self.trainer or _calling_trainer()
        if self.monitor.store is None:
            self.monitor.bind_run_dir(f"{args.output_dir}/evalcast")
        self.monitor.set_budget(Budget(max_steps=state.max_steps, max_tokens=self.monitor.budget.max_tokens,
                                       lr=_lr_schedule(kwargs.get("lr_scheduler"), state.max_steps)))
        if state.global_step > 0:
            self.monitor.rewind(state.global_step)
        if self.reuse_trackers and self.trainer is not None and state.is_world_process_zero:
            self.monitor.use_framework_trackers(trackers_from_hf_trainer(self.trainer))

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        if self.every_n_steps and state.global_step % self.every_n_steps == 0:
            self._evaluate(args, state, control, kwargs["model"])

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not self.every_n_steps:
            self._evaluate(args, state, control, kwargs["model"])

    # ---------------------------------------------------------------- work
    def _evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: Any) -> None:
        ctx = TrainingContext(step=state.global_step, tokens_seen=state.num_input_tokens_seen or None,
                              epoch=state.epoch, autocast_dtype=_autocast_dtype(args), train=_train_figures(state))
        self.last = evaluation = self.monitor.evaluate(model, ctx)
        if evaluation.decision.stop_training:
            control.should_training_stop = True
        mode = self.log_to_trainer
        if mode == "auto":  # trainer.log only when some reporter is not written to directly
            others = set(args.report_to or ()) - REUSED_REPORTERS
            mode = "headline" if others or not self.monitor.framework_trackers else "none"
        if evaluation.metrics and state.is_world_process_zero and self.trainer is not None and mode != "none":
            self.trainer.log({k: v for k, v in evaluation.metrics.items() if mode == "all" or is_headline(k)})


def _calling_trainer() -> Trainer | None:
    """The ``Trainer`` whose method is calling this event (found on the call stack)."""
    frame = inspect.currentframe()
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Trainer):
            return candidate
        frame = frame.f_back
    return None


def _autocast_dtype(args: TrainingArguments) -> torch.dtype | None:
    if getattr(args, "bf16", False):
        return torch.bfloat16
    if getattr(args, "fp16", False):
        return torch.float16
    return None


def _train_figures(state: TrainerState) -> dict[str, float]:
    """The latest training loss, learning rate, grad norm and eval loss from the Trainer's log history."""
    found: dict[str, float] = {}
    for entry in reversed(state.log_history):
        for key, name in TRAIN_KEYS.items():
            if name not in found and isinstance(entry.get(key), (int, float)):
                found[name] = float(entry[key])
        if len(found) == len(TRAIN_KEYS):
            break
    return found


def _lr_schedule(scheduler: Any, max_steps: int) -> list[float] | None:
    """Learning rate at every step 0..max_steps, read from a ``LambdaLR`` without stepping it."""
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if not lambdas or max_steps <= 0 or max_steps > 10_000_000:
        return None
    base = scheduler.base_lrs[0]
    try:
        return [float(base * lambdas[0](s)) for s in range(max_steps + 1)]
    except Exception:
        logger.info("evalcast: could not read the learning-rate schedule; forecasts use steps only")
        return None
