"""The framework-agnostic core: plan, evaluate on every rank, agree, record, forecast, log."""

from evalcast.monitor.anchors import AnchorConfig
from evalcast.monitor.config import Budget, MonitorConfig, TrainingContext
from evalcast.monitor.evaluation import Evaluation, EvaluationSkipped, ShardedForwardError
from evalcast.monitor.exchange import Decision
from evalcast.monitor.monitor import Monitor

__all__ = ["AnchorConfig", "Budget", "Decision", "Evaluation", "EvaluationSkipped", "Monitor", "MonitorConfig",
           "ShardedForwardError", "TrainingContext"]
