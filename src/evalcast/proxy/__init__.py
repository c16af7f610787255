"""Aggregation of token statistics into named proxy metrics per task and domain."""

from evalcast.proxy.aggregate import PREFIX, GroupIndex, aggregate, metric_name, per_sequence_means, record_groups

__all__ = ["PREFIX", "GroupIndex", "aggregate", "metric_name", "per_sequence_means", "record_groups"]
