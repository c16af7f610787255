"""Find the trackers a trainer already reports to, and write into their runs and writers.

Framework adapters call these once, when the callback is attached. The runs and writers often do not
exist yet (HF opens the W&B run and creates ``tb_writer`` in ``on_train_begin``; Lightning creates a
logger's ``experiment`` on first access), so each backend comes wrapped in a :class:`LazyTracker` that
resolves it at first use, normally the first save. Frameworks are imported here only inside the
functions, from modules the trainer has already loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from evalcast.trackers.base import AlertLevel, Curve, Tracker


class LazyTracker(Tracker):
    """Builds its backend with ``build()`` at first use; ``what`` names it in errors."""

    def __init__(self, build: Callable[[], Tracker], what: str) -> None:
        self._build = build
        self.what = what
        self._tracker: Tracker | None = None

    @property
    def tracker(self) -> Tracker:
        if self._tracker is None:
            self._tracker = self._build()
        return self._tracker

    def __repr__(self) -> str:
        state = "unresolved" if self._tracker is None else repr(self._tracker)
        return f"LazyTracker({self.what}: {state})"

    def prepare(self) -> None:
        self.tracker.prepare()

    def log(self, metrics: Mapping[str, float], *, step: int) -> None:
        self.tracker.log(metrics, step=step)

    def log_curve(self, name: str, curve: Curve, *, step: int) -> None:
        self.tracker.log_curve(name, curve, step=step)

    def log_table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, step: int) -> None:
        self.tracker.log_table(name, columns, rows, step=step)

    def log_image(self, name: str, path: str, *, step: int) -> None:
        self.tracker.log_image(name, path, step=step)

    def alert(self, title: str, text: str, *, level: AlertLevel = "WARN", step: int) -> None:
        self.tracker.alert(title, text, level=level, step=step)

    def finish(self) -> None:
        if self._tracker is not None:
            self._tracker.finish()


# ---------------------------------------------------------------------------------- HF transformers
def trackers_from_hf_trainer(trainer: Any) -> list[Tracker]:
    """Backends writing into the runs of the trainer's ``report_to`` callbacks.

    ``WandbCallback`` -> the global ``wandb.run`` it opened; ``TensorBoardCallback`` -> its ``tb_writer``;
    ``MLflowCallback`` -> ``mlflow.active_run()``. Other reporters are left alone (log through
    ``trainer.log`` to reach them). Each is resolved at first use, after ``on_train_begin``.
    """
    from transformers.integrations import MLflowCallback, TensorBoardCallback, WandbCallback

    found: list[Tracker] = []
    for cb in trainer.callback_handler.callbacks:
        if isinstance(cb, WandbCallback):
            found.append(LazyTracker(_hf_wandb, "HF WandbCallback's run"))
        elif isinstance(cb, TensorBoardCallback):
            found.append(LazyTracker(partial(_hf_tensorboard, cb), "HF TensorBoardCallback's tb_writer"))
        elif isinstance(cb, MLflowCallback):
            found.append(LazyTracker(_hf_mlflow, "HF MLflowCallback's active run"))
    return found


def _not_started(what: str) -> RuntimeError:
    return RuntimeError(f"{what} does not exist yet: HF creates it in on_train_begin. Log from on_save "
                        "or later (or call trainer.train() first)")


def _hf_wandb() -> Tracker:
    import wandb

    from evalcast.trackers.wandb import WandbTracker

    if wandb.run is None:
        raise _not_started("The W&B run of HF's WandbCallback")
    return WandbTracker(run=wandb.run)


def _hf_tensorboard(cb: Any) -> Tracker:
    from evalcast.trackers.tensorboard import TensorBoardTracker

    if cb.tb_writer is None:
        raise _not_started("TensorBoardCallback.tb_writer")
    return TensorBoardTracker(writer=cb.tb_writer)


def _hf_mlflow() -> Tracker:
    import mlflow

    from evalcast.trackers.mlflow import MlflowTracker

    run = mlflow.active_run()
    if run is None:
        raise _not_started("The MLflow run of HF's MLflowCallback")
    return MlflowTracker(run_id=run.info.run_id)


# ---------------------------------------------------------------------------------------- Lightning
def trackers_from_lightning(trainer: Any) -> list[Tracker]:
    """One backend per logger in ``trainer.loggers``.

    ``WandbLogger`` / ``TensorBoardLogger`` -> their ``.experiment`` (run / writer); ``MLFlowLogger`` ->
    its ``.experiment`` client and ``.run_id``; any other logger -> a
    :class:`~evalcast.trackers.lightning_logger.LightningLoggerTracker` over ``log_metrics``. Works for
    both ``lightning.pytorch`` and ``pytorch_lightning`` trainers.
    """
    from evalcast.trackers.lightning_logger import LightningLoggerTracker

    package = type(trainer).__module__.split(".")[0]
    loggers = importlib.import_module("pytorch_lightning.loggers" if package == "pytorch_lightning"
                                      else "lightning.pytorch.loggers")
    found: list[Tracker] = []
    for lg in trainer.loggers:
        if isinstance(lg, loggers.WandbLogger):
            found.append(LazyTracker(partial(_pl_wandb, lg), "Lightning WandbLogger.experiment"))
        elif isinstance(lg, loggers.TensorBoardLogger):
            found.append(LazyTracker(partial(_pl_tensorboard, lg), "Lightning TensorBoardLogger.experiment"))
        elif isinstance(lg, loggers.MLFlowLogger):
            found.append(LazyTracker(partial(_pl_mlflow, lg), "Lightning MLFlowLogger run"))
        else:
            found.append(LightningLoggerTracker(lg))
    return found


def _pl_wandb(logger: Any) -> Tracker:
    from evalcast.trackers.wandb import WandbTracker

    return WandbTracker(run=logger.experiment)


def _pl_tensorboard(logger: Any) -> Tracker:
    from evalcast.trackers.tensorboard import TensorBoardTracker

    return TensorBoardTracker(writer=logger.experiment)


def _pl_mlflow(logger: Any) -> Tracker:
    from evalcast.trackers.mlflow import MlflowTracker

    return MlflowTracker(run_id=logger.run_id, client=logger.experiment)
