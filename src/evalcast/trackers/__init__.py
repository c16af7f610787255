"""Where evalcast's numbers go: W&B, TensorBoard, MLflow, any Lightning logger.

Importing this package imports no tracking framework (nor matplotlib): the backends, which import
theirs at module level, load on first attribute access or through :func:`make_tracker`.
"""

from __future__ import annotations

import importlib
from typing import Any

from evalcast.trackers.base import AlertLevel, CompositeTracker, Curve, NoopTracker, Tracker
from evalcast.trackers.discover import LazyTracker, trackers_from_hf_trainer, trackers_from_lightning
from evalcast.trackers.registry import make_tracker, register_tracker, tracker_names

_LAZY = {
    "WandbTracker": "evalcast.trackers.wandb",
    "TensorBoardTracker": "evalcast.trackers.tensorboard",
    "MlflowTracker": "evalcast.trackers.mlflow",
    "mlflow_metric_name": "evalcast.trackers.mlflow",
    "LightningLoggerTracker": "evalcast.trackers.lightning_logger",
    "render_curve": "evalcast.trackers.figures",
    "curve_png": "evalcast.trackers.figures",
    "evalcast_layout": "evalcast.trackers.tb_layout",
}

__all__ = [
    "AlertLevel", "CompositeTracker", "Curve", "LazyTracker", "NoopTracker", "Tracker",
    "make_tracker", "register_tracker", "tracker_names", "trackers_from_hf_trainer",
    "trackers_from_lightning", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'evalcast.trackers' has no attribute {name!r}")
