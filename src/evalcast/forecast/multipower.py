"""The multi-power law of a loss-like proxy against the whole learning-rate schedule.

Luo et al. 2025 (arXiv 2503.12811)::

    L(t) = L0 + A·(S1(t) + S_W)^(−α) − B·Σ_{k=W+1..t} (η_{k−1} − η_k)·[1 − (1 + C·η_k^(−γ)·S_k(t))^(−β)]

with ``S1(t) + S_W = Σ_{τ≤t} η_τ`` (the warm-up's area included), ``S_k(t) = Σ_{τ=k..t} η_τ`` and W the
last warm-up step (the LR's peak). The law claims that the decay shape (C, β, γ) is a property of the
setup, not of the run, in raw LR units; the drop size B grows with A, so the ratio B/A is transferred too
(:class:`DecayShape`). Fits work in units of the run's peak LR (η̃ = η/η_p, S in peak-LR steps), where
``Ã = A·η_p^(−α)``, ``B̃ = B·η_p`` and ``κ = C·η_p^(1−γ)``; parameters are ``(L0, Ã, α, B̃, κ, β, γ)``.

The drop term sums over every step. It is computed on blocks of steps (:func:`schedule_terms`): a block
holds the LR drop ``D`` of its steps, and its contribution at a later step t is ``D`` times the mean of
``1 − (1 + c·s)^(−β)`` over the block's range of ``S_k(t)``, in closed form (midpoint-aligned). Blocks
never straddle an evaluation step, so the error is second order in the block width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DecayShape:
    """The transferable part of the law, in raw LR units: ``C``, ``beta``, ``gamma`` and ``drop_ratio`` = B/A."""

    C: float
    beta: float
    gamma: float
    drop_ratio: float
    source: str = ""
    """Name of the run it was measured on."""

    def kappa(self, eta_peak: float) -> float:
        return self.C * eta_peak ** (1.0 - self.gamma)


@dataclass(frozen=True, eq=False)
class ScheduleTerms:
    """The schedule's quantities at a set of evaluation steps (see the module docstring)."""

    eta_peak: float
    steps: np.ndarray
    s1: np.ndarray
    """Area under the normalised LR curve up to each evaluation step, warm-up included."""
    eta_at: np.ndarray
    """Normalised LR at each evaluation step."""
    block_drop: np.ndarray
    block_eta: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    """Evaluation step and block of every (step, earlier block) pair."""
    s_lo: np.ndarray
    s_hi: np.ndarray
    """Range of ``S_k(t)`` over the block for each pair (shifted to the block's step midpoints)."""
    warmup_end: int

    @property
    def decays(self) -> bool:
        return bool(self.block_drop.size) and float(np.max(np.abs(self.block_drop))) > 0


def schedule_terms(lr: np.ndarray, steps: np.ndarray, n_blocks: int = 128) -> ScheduleTerms:
    """Precompute the law's schedule terms at (rounded, clipped) ``steps`` of schedule ``lr``."""
    lr = np.asarray(lr, dtype=float)
    last = lr.size - 1
    eta_peak = float(np.max(lr))
    eta = lr / eta_peak
    at = np.clip(np.rint(np.asarray(steps, dtype=float)), 0, last).astype(int)
    cum = np.cumsum(eta)
    warm = int(np.argmax(eta))
    drops = np.zeros_like(eta)
    drops[1:] = eta[:-1] - eta[1:]
    drops[: warm + 1] = 0.0
    edges = np.unique(np.concatenate([np.linspace(warm + 1, last + 1, n_blocks + 1).round().astype(int),
                                      at[at > warm] + 1, [warm + 1, last + 1]]))
    edges = edges[(edges >= warm + 1) & (edges <= last + 1)]
    starts, stops = edges[:-1], edges[1:]
    cdrop = np.concatenate([[0.0], np.cumsum(drops)])
    block_drop = cdrop[stops] - cdrop[starts]
    keep = np.abs(block_drop) > 1e-15
    starts, stops, block_drop = starts[keep], stops[keep], block_drop[keep]
    width = cum[stops - 1] - cum[starts - 1]
    lengths = (stops - starts).astype(float)
    block_eta = np.maximum(width / lengths, 1e-8) if lengths.size else np.zeros(0)
    s1 = cum[at]
    rows, cols = np.nonzero(stops[None, :] - 1 <= at[:, None])
    half = 0.5 * width / np.maximum(lengths, 1.0)
    s_lo = s1[rows] - cum[stops - 1][cols] + half[cols]
    s_hi = s1[rows] - cum[starts - 1][cols] + half[cols]
    return ScheduleTerms(eta_peak, at, s1, eta[at], block_drop, block_eta, rows, cols, s_lo, s_hi, warm)


def drop_term(terms: ScheduleTerms, kappa: np.ndarray, beta: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """``Σ_k (η̃_{k−1} − η̃_k)·[1 − (1 + κ·η̃_k^(−γ)·S_k(t))^(−β)]`` at each evaluation step.

    ``kappa``, ``beta``, ``gamma`` are scalars or ``(P,)`` arrays; returns ``(n,)`` or ``(P, n)``.
    """
    kappa, beta, gamma = (np.asarray(v, dtype=float) for v in (kappa, beta, gamma))
    shape = np.broadcast(kappa, beta, gamma).shape
    if not terms.block_drop.size:
        return np.zeros((*shape, terms.s1.size))
    k, b, g = (np.reshape(v, (-1, 1)) for v in np.broadcast_arrays(kappa, beta, gamma))
    c = (k * terms.block_eta[None, :] ** (-g))[:, terms.cols]
    lo, hi = terms.s_lo[None], terms.s_hi[None]
    u_lo = np.log1p(c * lo)
    d = np.log1p(c * hi) - u_lo
    one_b = 1.0 - b
    small = np.abs(one_b) < 1e-8
    phi = np.where(small, d, np.expm1(one_b * d) / np.where(small, 1.0, one_b))
    mean_f = 1.0 - np.exp(one_b * u_lo) * phi / (c * np.maximum(hi - lo, 1e-300))
    contrib = terms.block_drop[terms.cols][None, :] * mean_f
    n = terms.s1.size
    out = np.zeros((contrib.shape[0], n))
    for i in range(contrib.shape[0]):
        out[i] = np.bincount(terms.rows, weights=contrib[i], minlength=n)
    return out.reshape(*shape, n)


def run_drop(terms: ScheduleTerms, shape: DecayShape) -> np.ndarray:
    """The drop term of ``shape`` on this run's schedule (κ from the run's peak LR)."""
    return drop_term(terms, shape.kappa(terms.eta_peak), shape.beta, shape.gamma)


def mpl(l0: np.ndarray, a: np.ndarray, alpha: np.ndarray, shape: DecayShape | None,
        terms: ScheduleTerms) -> np.ndarray:
    """The law at the evaluation steps for run parameters ``(L0, Ã, α)`` (scalars or ``(B,)``) and a decay
    shape in raw units (None: no drop term). Returns ``(n,)`` or ``(B, n)``."""
    l0, a, alpha = (np.asarray(v, dtype=float)[..., None] for v in (l0, a, alpha))
    out = l0 + a * terms.s1 ** (-alpha)
    if shape is not None and terms.decays:
        out = out - a * shape.drop_ratio * terms.eta_peak ** (1.0 + alpha) * run_drop(terms, shape)
    return out
