"""evalcast: forecast an LLM's downstream accuracy while it trains.

Data flow at a checkpoint: :mod:`evalcast.data` (expert set) → :mod:`evalcast.stats` (one teacher-forced
pass, token statistics) → :mod:`evalcast.proxy` (aggregation) and :mod:`evalcast.pairs` → the
:class:`Monitor` (:mod:`evalcast.monitor`; probe, anchors, forecasts, alerts) → :mod:`evalcast.trackers`.
Framework adapters live in :mod:`evalcast.integrations`.

The names below load on first use, so ``import evalcast.forecast`` or ``import evalcast.trackers`` does
not pull in torch, transformers or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ExpertRecord": "evalcast.data", "ExpertSet": "evalcast.data", "FieldMap": "evalcast.data",
    "PromptFormat": "evalcast.data", "TokenizeSettings": "evalcast.data", "StatSpec": "evalcast.stats",
    "AnchorConfig": "evalcast.monitor", "Budget": "evalcast.monitor", "Evaluation": "evalcast.monitor",
    "ForecastSettings": "evalcast.monitor", "Monitor": "evalcast.monitor", "MonitorConfig": "evalcast.monitor",
    "RunStore": "evalcast.monitor", "TrainingContext": "evalcast.monitor",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'evalcast' has no attribute {name!r}")
