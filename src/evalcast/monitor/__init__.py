"""The framework-agnostic core: evaluate at a checkpoint on every rank, agree, record, log."""

from evalcast.monitor.config import MonitorConfig, TrainingContext
from evalcast.monitor.exchange import Decision
from evalcast.monitor.isolation import RngState, isolated
from evalcast.monitor.monitor import Evaluation, EvaluationSkipped, Monitor
from evalcast.monitor.run_store import RunStore

__all__ = ["Decision", "Evaluation", "EvaluationSkipped", "Monitor", "MonitorConfig", "RngState", "RunStore",
           "TrainingContext", "isolated"]
