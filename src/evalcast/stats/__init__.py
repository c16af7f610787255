"""Token statistics from one teacher-forced forward pass over the expert set."""

from evalcast.stats.forward import BatchContext, ForwardResult, StatsTap, Tap, run_forward
from evalcast.stats.head import ModelMismatchError, OutputHead, check_compatible, resolve_output_head, unwrap
from evalcast.stats.token_stats import StatsConfig, token_statistics

__all__ = ["BatchContext", "ForwardResult", "ModelMismatchError", "OutputHead", "StatsConfig", "StatsTap", "Tap",
           "check_compatible", "resolve_output_head", "run_forward", "token_statistics", "unwrap"]
