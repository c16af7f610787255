"""evalcast: forecast an LLM's downstream accuracy while it trains.

Data flow at a checkpoint: :mod:`evalcast.data` (expert set) → :mod:`evalcast.stats` (one teacher-forced
pass, token statistics) → :mod:`evalcast.proxy` (aggregation) and :mod:`evalcast.pairs` → the
:class:`Monitor` (:mod:`evalcast.monitor`) → :mod:`evalcast.trackers`. Framework adapters live in
:mod:`evalcast.integrations`.
"""

from evalcast.data import ExpertRecord, ExpertSet, FieldMap, PromptFormat, TokenizeSettings
from evalcast.monitor import (
                              AnchorConfig,
                              Budget,
                              Evaluation,
                              ForecastSettings,
                              Monitor,
                              MonitorConfig,
                              RunStore,
                              TrainingContext,
)
from evalcast.stats import StatSpec

__version__ = "0.1.0"

__all__ = [
                              "AnchorConfig",
                              "Budget",
                              "Evaluation",
                              "ExpertRecord",
                              "ExpertSet",
                              "FieldMap",
                              "ForecastSettings",
                              "Monitor",
                              "MonitorConfig",
                              "PromptFormat",
                              "RunStore",
                              "StatSpec",
                              "TokenizeSettings",
                              "TrainingContext",
                              "__version__",
]
