"""Backends by name: ``make_tracker("wandb", init={"project": "p"})``.

Built-in names map to ``"module:Class"`` strings so that nothing is imported until a backend is made;
other parts (the local run-directory tracker, a user's own) add theirs with :func:`register_tracker`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from evalcast.trackers.base import NoopTracker, Tracker

_FACTORIES: dict[str, str | Callable[..., Tracker]] = {
    "wandb": "evalcast.trackers.wandb:WandbTracker",
    "tensorboard": "evalcast.trackers.tensorboard:TensorBoardTracker",
    "mlflow": "evalcast.trackers.mlflow:MlflowTracker",
    "noop": NoopTracker,
}


def register_tracker(name: str, factory: str | Callable[..., Tracker]) -> None:
    """Make ``factory`` (a callable or a ``"module:attr"`` path) available as ``name``."""
    _FACTORIES[name] = factory


def tracker_names() -> list[str]:
    """The names :func:`make_tracker` accepts."""
    return sorted(_FACTORIES)


def make_tracker(name: str, **kwargs: Any) -> Tracker:
    """Build the backend registered as ``name`` with ``kwargs`` (its constructor's arguments)."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown tracker {name!r}; known: {', '.join(tracker_names())} "
                         "(add one with evalcast.trackers.register_tracker)") from None
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(**kwargs)
