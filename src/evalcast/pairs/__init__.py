"""Discriminative pairs: per-byte log-likelihood margins of expert vs flawed responses."""

from evalcast.pairs.margins import PairMargins, pair_margins, pair_metrics, per_byte_loglik

__all__ = ["PairMargins", "pair_margins", "pair_metrics", "per_byte_loglik"]
