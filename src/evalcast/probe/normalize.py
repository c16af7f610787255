"""Probe inputs from checkpoint features: layer selection, z-scoring, optional random projection.

Activation norms grow during training, so a probe fitted on early checkpoints sees inputs of another
scale later. Per-checkpoint normalisation (``docs/methods.md`` §3) z-scores every feature over the probe
questions *at that checkpoint*, before training and before predicting. It removes drift in each
feature's location and scale, at a price: the probe sees only how questions differ from each other at
a checkpoint, not how the whole checkpoint moved, so its mean prediction tracks the pass@1 level of the
anchors it was trained on rather than the level of a new checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evalcast.stats.features import CheckpointFeatures

_TINY = 1e-8


@dataclass(frozen=True)
class Scaler:
    """Per-column z-score: ``(x - mean) / scale``; a constant column maps to 0."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Scaler:
        x = np.asarray(x, dtype=np.float64)
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std > _TINY * (1.0 + np.abs(x).max(axis=0)), std, 1.0))

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.scale


def layer_positions(features: CheckpointFeatures, layers: Sequence[int] | None) -> list[int]:
    """Positions in ``features.layers`` of the requested decoder blocks (all when ``layers`` is None)."""
    if layers is None:
        return list(range(len(features.layers)))
    missing = [layer for layer in layers if layer not in features.layers]
    if missing:
        raise ValueError(f"probe layers {missing} were not captured (features hold layers {features.layers}); "
                         "capture them with FeatureTap(layers=...) or set ProbeConfig.layers")
    return [features.layers.index(layer) for layer in layers]


def vectors(features: CheckpointFeatures, layers: Sequence[int] | None, pooling: str, per_checkpoint: bool,
            project_dim: int | None = None, seed: int = 0, with_proxies: bool = False) -> np.ndarray:
    """Inputs of the logistic and MLP probes: the pooled hidden states of the chosen layers (z-scored at
    this checkpoint when ``per_checkpoint``, then projected to ``project_dim`` when wider), followed by
    the question's own teacher-forced statistics when ``with_proxies`` and the features carry them (the
    monitor's always do; never z-scored per checkpoint:
    they carry the level that per-checkpoint normalisation removes from the hidden states)."""
    pooled = features.last if pooling == "last" else features.mean
    x = np.asarray(pooled, dtype=np.float64)[:, layer_positions(features, layers)].reshape(len(features.ids), -1)
    if per_checkpoint:
        x = Scaler.fit(x).apply(x)
    if project_dim is not None and x.shape[1] > project_dim:
        x = x @ projection(x.shape[1], project_dim, seed)
    if with_proxies and features.proxies is not None:
        x = np.hstack([x, np.asarray(features.proxies, dtype=np.float64)])
    return x


def tokens(features: CheckpointFeatures, per_checkpoint: bool) -> list[np.ndarray]:
    """Per-question ``[prompt_len, dim]`` float64 token features of the attention probe.

    Per-checkpoint normalisation pools every prompt position of every question at this checkpoint.
    """
    if features.tokens is None:
        raise ValueError("the attention probe needs token features: capture them with "
                         "FeatureTap(capture_tokens=True)")
    arrays = [np.asarray(t, dtype=np.float64) for t in features.tokens]
    if not per_checkpoint:
        return arrays
    scaler = Scaler.fit(np.concatenate(arrays))
    return [scaler.apply(t) for t in arrays]


def projection(dim_in: int, dim_out: int, seed: int) -> np.ndarray:
    """A fixed ``[dim_in, dim_out]`` Gaussian projection with entries N(0, 1/dim_in) (keeps unit scale)."""
    return np.random.default_rng([seed, dim_in, dim_out]).standard_normal((dim_in, dim_out)) / np.sqrt(dim_in)
