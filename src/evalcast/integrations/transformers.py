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
exchange are safe there. Metrics go into the Trainer's own log stream (``trainer.log``), so every
``report_to`` tracker receives them (W&B shows them as ``train/evalcast/...``), plus the monitor's own
trackers and run directory. A decision to stop sets ``control.should_training_stop``.
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

logger = logging.getLogger("evalcast")

TRAIN_KEYS = {"loss": "loss", "learning_rate": "lr", "grad_norm": "grad_norm", "eval_loss": "val_loss"}


class EvalcastCallback(TrainerCallback):
    """Runs an evalcast :class:`~evalcast.Monitor` at every checkpoint save of a HF ``Trainer``.

    every_n_steps: evaluate every N optimizer steps instead of at saves.
    log_to_trainer: which metrics go through ``trainer.log``: ``"headline"`` (token-weighted proxies of
        the run and of each task, cost, forecasts), ``"all"`` or ``"none"``. The run directory always
        keeps everything.
    """

    def __init__(self, monitor: Monitor, *, every_n_steps: int | None = None, log_to_trainer: str = "headline",
                 trainer: Trainer | None = None) -> None:
        if log_to_trainer not in ("headline", "all", "none"):
            raise ValueError(f"log_to_trainer={log_to_trainer!r}: use 'headline', 'all' or 'none'")
        self.monitor, self.every_n_steps, self.log_to_trainer = monitor, every_n_steps, log_to_trainer
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
        if evaluation.metrics and state.is_world_process_zero and self.trainer is not None \
                and self.log_to_trainer != "none":
            logs = {k: v for k, v in evaluation.metrics.items() if self.log_to_trainer == "all" or is_headline(k)}
            self.trainer.log(logs)


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
    except Exception:  # noqa: BLE001 - a custom lambda may need state we do not have
        logger.info("evalcast: could not read the learning-rate schedule; forecasts use steps only")
        return None
