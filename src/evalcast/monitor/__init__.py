"""The framework-agnostic core: plan, evaluate on every rank, agree, record, forecast, log."""

from evalcast.monitor.anchors import AnchorConfig
from evalcast.monitor.config import Budget, MonitorConfig, TrainingContext
from evalcast.monitor.exchange import Decision
from evalcast.monitor.forecasting import ForecastSettings
from evalcast.monitor.isolation import RngState, isolated
from evalcast.monitor.monitor import Evaluation, EvaluationSkipped, Monitor
from evalcast.monitor.run_store import RunStore

__all__ = ["AnchorConfig", "Budget", "Decision", "Evaluation", "EvaluationSkipped", "ForecastSettings", "Monitor",
           "MonitorConfig", "RngState", "RunStore", "TrainingContext", "isolated"]
