"""Hugging Face ``Trainer`` adapter: ``TransformersCallback``.

When it fires (transformers ≥ 4.46, checked on 5.24)::

    train()                 on_train_begin → run dir = <output_dir>/evalcast unless given; budget from
                                             max_steps and the LR schedule; resume from step S rewinds
                                             the run store to S
    every optimizer step    on_step_end    → evaluate when every_n_steps divides the step (if set)
    after each checkpoint   on_save        → evaluate (default): the checkpoint directory is already
                                             written, and on_log/on_evaluate of that step came before

``on_save`` runs on every rank under DDP/FSDP/DeepSpeed, so the monitor's all-rank forward pass and
exchange are safe there. Metrics go into the monitor's own trackers and run directory, and, once the
callback knows its Trainer, into the runs the ``report_to`` integrations opened (W&B, TensorBoard,
MLflow: never a second run) under ``evalcast/...`` and, when no tracker is reused, the headline metrics
into the Trainer's own log stream (``trainer.log``: console, ``log_history`` and any other reporter).
A decision to stop sets ``control.should_training_stop``.

HF passes callbacks the model, optimizer and data loaders, never the Trainer itself, so the callback
is told which Trainer it serves: ``trainer.add_callback(TransformersCallback(monitor, trainer=trainer))``
or ``TransformersCallback(monitor).bind(trainer)``. Unbound, it evaluates and writes the run directory
as usual, and warns at ``on_train_begin`` when a ``report_to`` run or log stream is left out.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from evalcast.monitor import Budget, Evaluation, Monitor, TrainingContext
from evalcast.proxy.aggregate import is_headline
from evalcast.trackers.discover import trackers_from_hf_trainer

logger = logging.getLogger("evalcast")

REUSED_REPORTERS = {"wandb", "tensorboard", "mlflow", "none"}
TRAIN_KEYS = {"loss": "loss", "learning_rate": "lr", "grad_norm": "grad_norm", "eval_loss": "val_loss"}


class TransformersCallback(TrainerCallback):
    """Runs an evalcast :class:`~evalcast.Monitor` at every checkpoint save of a HF ``Trainer``.

    every_n_steps: evaluate every N optimizer steps instead of at saves.
    trainer: the Trainer this callback serves (or :meth:`bind` it later); needed to write into the
        ``report_to`` runs and ``trainer.log``.
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
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps}: give a whole number of steps >= 1, or None (at saves)")
        self.monitor, self.every_n_steps, self.log_to_trainer = monitor, every_n_steps, log_to_trainer
        self.reuse_trackers = reuse_trackers
        self.trainer = trainer
        self.last: Evaluation | None = None

    def bind(self, trainer: Trainer) -> TransformersCallback:
        """Serve ``trainer``: write into its ``report_to`` runs and log stream (returns the callback)."""
        self.trainer = trainer
        return self

    # ---------------------------------------------------------------- events
    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        if self.trainer is None and state.is_world_process_zero:
            _warn_unbound(args, self.reuse_trackers, self.log_to_trainer)
        if self.monitor.store is None:
            self.monitor.bind_run_dir(f"{args.output_dir}/evalcast")
        lr = self._lr_schedule(kwargs.get("lr_scheduler"), state.max_steps)
        with self.monitor.policy.guard("reading the training budget (forecasts go without it)"):
            self.monitor.set_budget(Budget(max_steps=state.max_steps, max_tokens=self.monitor.budget.max_tokens,
                                           lr=lr))
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
            with self.monitor.policy.guard(f"trainer.log of step {state.global_step}"):
                self.trainer.log({k: v for k, v in evaluation.metrics.items() if mode == "all" or is_headline(k)})

    def _lr_schedule(self, scheduler: Any, max_steps: int) -> list[float] | None:
        """Learning rate at every step 0..max_steps, read from a ``LambdaLR`` without stepping it."""
        lambdas = getattr(scheduler, "lr_lambdas", None)
        if not lambdas or max_steps <= 0 or max_steps > 10_000_000:
            return None
        base = scheduler.base_lrs[0]
        with self.monitor.policy.guard("reading the learning-rate schedule (forecasts go without it)",
                                       reraise=False, level=logging.WARNING):
            return [float(base * lambdas[0](s)) for s in range(max_steps + 1)]
        return None


def _warn_unbound(args: TrainingArguments, reuse_trackers: bool, log_to_trainer: str) -> None:
    """Say what an unbound callback leaves out: the ``report_to`` runs, and ``trainer.log`` when asked for."""
    reporters = sorted(set(args.report_to or ()) - {"none"})
    if (reporters and (reuse_trackers or log_to_trainer != "none")) or log_to_trainer in ("headline", "all"):
        logger.warning("evalcast: TransformersCallback does not know its Trainer, so evalcast's metrics go to the run "
                       "directory and the monitor's own trackers, not to report_to=%s nor trainer.log. Add it "
                       "with trainer.add_callback(TransformersCallback(monitor, trainer=trainer)) or call "
                       "callback.bind(trainer).", reporters)


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


