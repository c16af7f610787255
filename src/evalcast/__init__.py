"""evalcast: forecast an LLM's downstream accuracy while it trains.

Data flow at a checkpoint: :mod:`evalcast.data` (expert set) → :mod:`evalcast.stats` (one teacher-forced
pass, token statistics) → :mod:`evalcast.proxy` (aggregation) and :mod:`evalcast.pairs` → the
:class:`Monitor` (:mod:`evalcast.monitor`; probe, anchors, forecasts, alerts) → :mod:`evalcast.runs` (the
run directory) and :mod:`evalcast.trackers`. Framework adapters live in :mod:`evalcast.callbacks`.

The names below are what a user writes (``docs/api.md``); everything else stays importable from its
module. They load on first use, so ``import evalcast`` pulls in neither torch, transformers, Lightning
nor matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # the core
    "Monitor": "evalcast.monitor", "ExpertSet": "evalcast.data", "ExpertRecord": "evalcast.data",
    "FieldMap": "evalcast.data", "Budget": "evalcast.monitor",
    # configuration
    "MonitorConfig": "evalcast.monitor", "StatsConfig": "evalcast.stats.token_stats",
    "TokenizeConfig": "evalcast.data", "PromptConfig": "evalcast.data", "AnchorConfig": "evalcast.monitor",
    "DecodeConfig": "evalcast.generate", "ProbeConfig": "evalcast.probe", "NetConfig": "evalcast.probe",
    "ForecastConfig": "evalcast.forecast.config", "GateConfig": "evalcast.forecast.config",
    "ClusterConfig": "evalcast.forecast.config",
    # scorers (AnchorConfig(scorer=...))
    "Scorer": "evalcast.generate", "ScoreResult": "evalcast.generate", "ExactMatchScorer": "evalcast.generate",
    "NumericScorer": "evalcast.generate", "CodeExecutionScorer": "evalcast.generate",
    # alerts
    "Alert": "evalcast.alerts", "TargetReached": "evalcast.alerts", "ForecastPlateau": "evalcast.alerts",
    "ProxyPlateau": "evalcast.alerts", "Regression": "evalcast.alerts", "DomainRegression": "evalcast.alerts",
    "DomainShortfall": "evalcast.alerts",
    # framework callbacks (each imports its framework)
    "TransformersCallback": "evalcast.callbacks.transformers", "LightningCallback": "evalcast.callbacks.lightning",
    "evaluate_on_save_state": "evalcast.callbacks.accelerate",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'evalcast' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
