"""Functional forms of the forecasters, vectorised over parameter sets.

Every law takes parameters as an array of shape ``(p,)`` or ``(B, p)`` (B parameter sets, e.g. bootstrap
replicates) and returns values of shape ``(n,)`` or ``(B, n)``; its Jacobian adds a trailing axis ``p``.

* ``proxy_law``: the loss-like proxy against training progress,
  ``y = E + A·t1^(−α) − C·t2``. With ``t1 = C/C0`` and ``C ≡ 0`` this is the power law with asymptote
  (``docs/methods.md`` §6); with ``t1 = S1/S1_0`` (area under the LR curve) and ``t2 = S2/S2_end`` (annealing area)
  it is the learning-rate-annealing law of Tissue et al. 2024 (arXiv 2408.11029), where ``C`` is then the
  loss drop that annealing adds by the end of the budget.
* ``sigmoid``: accuracy against the normalised proxy ``z``, ``g + (u − g)·σ(k·(z − z0))`` (or with the
  normal CDF in place of σ, the probit link).
* ``cod``: the COD per-cluster form against compute, ``g + (1 − g)·exp(−a·t^(−b) − c)``.
* ``neg_log_power``: the compute-only power-law baseline.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

#: Parameter names of each law, in order.
PROXY_PARAMS = ("E", "A", "alpha", "C")
SIGMOID_PARAMS = ("k", "z0", "u")
COD_PARAMS = ("a", "b", "c")
POWER_ACC_PARAMS = ("A", "alpha")


def _cols(theta: np.ndarray) -> list[np.ndarray]:
    """Columns of ``theta`` shaped to broadcast against ``(n,)`` data: scalars or ``(B, 1)``."""
    theta = np.asarray(theta, dtype=float)
    if theta.ndim == 1:
        return list(theta)
    return [theta[:, i : i + 1] for i in range(theta.shape[1])]


def proxy_law(theta: np.ndarray, t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
    """``E + A·t1^(−α) − C·t2``; ``theta = (E, A, alpha, C)``."""
    e, a, alpha, c = _cols(theta)
    return e + a * np.exp(-alpha * np.log(t1)) - c * t2


def proxy_law_jac(theta: np.ndarray, t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
    """Jacobian of :func:`proxy_law` with respect to ``(E, A, alpha, C)``."""
    e, a, alpha, _c = _cols(theta)
    lt = np.log(t1)
    tp = np.exp(-alpha * lt) + 0.0 * e
    return np.stack([np.ones_like(tp), tp, -a * tp * lt, -t2 + 0.0 * tp], axis=-1)


def _expit(v: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * v))


def _link(v: np.ndarray, link: str) -> tuple[np.ndarray, np.ndarray]:
    """The link's CDF and its derivative: "logit" (logistic), "probit" (normal, lighter tails), "cloglog"
    (Gumbel-min: slow start, fast finish) or "loglog" (Gumbel-max: fast start, slow finish)."""
    if link == "probit":
        return ndtr(v), np.exp(-0.5 * v * v) / np.sqrt(2 * np.pi)
    if link == "cloglog":
        ev = np.exp(np.minimum(v, 700.0))
        return -np.expm1(-ev), np.exp(np.minimum(v, 700.0) - ev)
    if link == "loglog":
        ev = np.exp(np.minimum(-v, 700.0))
        return np.exp(-ev), np.exp(np.minimum(-v, 700.0) - ev)
    s = _expit(v)
    return s, s * (1.0 - s)


def sigmoid(theta: np.ndarray, z: np.ndarray, g: float, link: str = "logit") -> np.ndarray:
    """``g + (u − g)·F(k·(z − z0))`` with F the logistic (or normal) CDF; ``theta = (k, z0, u)``."""
    k, z0, u = _cols(theta)
    return g + (u - g) * _link(k * (z - z0), link)[0]


def sigmoid_jac(theta: np.ndarray, z: np.ndarray, g: float, link: str = "logit") -> np.ndarray:
    """Jacobian of :func:`sigmoid` with respect to ``(k, z0, u)``."""
    k, z0, u = _cols(theta)
    s, ds = _link(k * (z - z0), link)
    ds = ds * (u - g)
    return np.stack([ds * (z - z0), -ds * k, s], axis=-1)


def cod(theta: np.ndarray, t: np.ndarray, g: float) -> np.ndarray:
    """COD cluster law ``g + (1 − g)·exp(−a·t^(−b) − c)``; ``theta = (a, b, c)``."""
    a, b, c = _cols(theta)
    return g + (1.0 - g) * np.exp(-a * np.exp(-b * np.log(t)) - c)


def cod_jac(theta: np.ndarray, t: np.ndarray, g: float) -> np.ndarray:
    """Jacobian of :func:`cod` with respect to ``(a, b, c)``."""
    a, b, c = _cols(theta)
    lt = np.log(t)
    tb = np.exp(-b * lt)
    v = (1.0 - g) * np.exp(-a * tb - c)
    return np.stack([-v * tb, v * a * tb * lt, -v + 0.0 * tb], axis=-1)


def neg_log_power(theta: np.ndarray, t: np.ndarray, g: float, u: float) -> np.ndarray:
    """Krajewski et al. 2025 baseline, ``−log((acc − g)/(u − g)) = A·t^(−α)``; ``theta = (A, alpha)``."""
    a, alpha = _cols(theta)
    return g + (u - g) * np.exp(-a * np.exp(-alpha * np.log(t)))


def neg_log_power_jac(theta: np.ndarray, t: np.ndarray, g: float, u: float) -> np.ndarray:
    """Jacobian of :func:`neg_log_power` with respect to ``(A, alpha)``."""
    a, alpha = _cols(theta)
    lt = np.log(t)
    ta = np.exp(-alpha * lt)
    v = (u - g) * np.exp(-a * ta)
    return np.stack([-v * ta, v * a * ta * lt], axis=-1)
