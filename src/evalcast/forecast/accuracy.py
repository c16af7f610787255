"""Step 2 of the forecast: accuracy against the loss-like proxy (``docs/methods.md`` §6).

``acc = g + (u − g)·F(k·(z − z0))`` with ``z`` the standardised proxy, F a link's CDF (logistic or
normal) and the sign of ``k`` free, so the anchors decide which way accuracy moves with the proxy. ``g``
is fixed at chance, ``u`` at the ceiling until observed accuracy exceeds ``free_ceiling_above·u``; then
``u`` is fitted with the ladder's helper point (y = 0, acc = ceiling). Anchors weigh 1/SE²; probe points
share ``probe_weight`` of the anchors' total weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalcast.forecast.config import ForecastConfig, GateConfig
from evalcast.forecast.fit import fit_curve, kstep_refit
from evalcast.forecast.gates import Reason, Refusal, check_anchors
from evalcast.forecast.laws import sigmoid, sigmoid_jac

K_MAX = 50.0
Z_LIM = 50.0


def _expit(v: float) -> float:
    return float(0.5 * (1.0 + np.tanh(0.5 * v)))


@dataclass(frozen=True, eq=False)
class AccuracyPoints:
    """Accuracy observations for step 2: checkpoint index, value, SE, weight and bootstrap replicates."""

    index: np.ndarray
    acc: np.ndarray
    se: np.ndarray
    weight: np.ndarray
    replicates: np.ndarray
    n_anchors: int
    source: str


@dataclass(frozen=True, eq=False)
class AccuracyFit:
    """A fitted ``acc = g + (u − g)·F(k·(z − z0))`` with ``z = (y − center)/scale`` and F the link's CDF."""

    theta: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    center: float
    scale: float
    g: float
    helper: tuple[float, float, float] | None
    """(z, acc, weight) of the ceiling helper point when u is free."""
    link: str = "logit"

    def predict(self, y: np.ndarray, theta: np.ndarray | None = None) -> np.ndarray:
        return sigmoid(self.theta if theta is None else theta, (y - self.center) / self.scale, self.g, self.link)

    def params(self) -> dict[str, float]:
        pre = "" if self.link == "logit" else f"{self.link}_"
        return {f"{pre}k": float(self.theta[0]), f"{pre}z0": float(self.theta[1]), f"{pre}u": float(self.theta[2]),
                "y_center": self.center, "y_scale": self.scale}


def fit_links(y: np.ndarray, pts: AccuracyPoints, g: float, ceiling: float, center: float, scale: float,
              cfg: ForecastConfig, what: str = "accuracy~proxy") -> list[AccuracyFit]:
    """Step 2 with every configured link; the ones that fit (raises the first refusal if none does)."""
    fits, first = [], None
    for link in cfg.links:
        try:
            fits.append(fit_sigmoid(y, pts, g, ceiling, center, scale, cfg, what, link=link))
        except Refusal as r:
            first = first or r
    if not fits:
        assert first is not None
        raise first
    return fits


def fit_sigmoid(y: np.ndarray, pts: AccuracyPoints, g: float, ceiling: float, center: float, scale: float,
                cfg: ForecastConfig, what: str = "accuracy~proxy", helper: bool = True,
                link: str = "logit") -> AccuracyFit:
    """Step 2 with one link; raises :class:`Refusal` on a failed gate.

    Fitted by Levenberg–Marquardt without bounds (much faster than the bounded method); a free
    ceiling is kept inside [max observed, ceiling] by fitting it through a logistic transform.

    Also the compute-only baseline with ``y = log x`` and ``helper=False``: the helper point says "a
    perfect proxy (y = 0) means the ceiling", which has no counterpart on a compute axis, so there u
    stays at the ceiling.
    """
    gates: GateConfig = cfg.gates
    anchor_mask = np.arange(pts.acc.size) < pts.n_anchors
    gate_acc = pts.acc[anchor_mask] if pts.n_anchors else pts.acc
    gate_se = pts.se[anchor_mask] if pts.n_anchors else pts.se
    refusal = check_anchors(gate_acc, gate_se, gates, "anchors" if pts.n_anchors else "probe points")
    if refusal:
        raise refusal
    z = (y - center) / scale
    u_free = helper and float(np.max(gate_acc)) > cfg.free_ceiling_above * ceiling
    inits = _sigmoid_inits(z, pts.acc, pts.weight, g, ceiling, 1.0 if link == "logit" else 1.0 / 1.7)
    sigma = 1.0 / np.sqrt(pts.weight)
    helper_point, theta = None, None
    if u_free:
        helper_point = ((0.0 - center) / scale, ceiling, float(np.max(pts.weight)))
        zz, aa = np.append(z, helper_point[0]), np.append(pts.acc, ceiling)
        ss = np.append(sigma, 1.0 / np.sqrt(helper_point[2]))
        u_lo = min(float(np.max(gate_acc)), ceiling - 1e-6)
        lower, upper = np.array([-K_MAX, -Z_LIM, u_lo]), np.array([K_MAX, Z_LIM, ceiling])
        span = ceiling - u_lo

        def f_free(zv: np.ndarray, k: float, z0: float, v: float) -> np.ndarray:
            return sigmoid(np.array([k, z0, u_lo + span * _expit(v)]), zv, g, link)

        def j_free(zv: np.ndarray, k: float, z0: float, v: float) -> np.ndarray:
            jac = sigmoid_jac(np.array([k, z0, u_lo + span * _expit(v)]), zv, g, link)
            jac[:, 2] *= span * _expit(v) * (1.0 - _expit(v))
            return jac

        best = fit_curve(f_free, zz, aa, ss, [(k, z0, 0.0) for k, z0 in inits], jac=j_free)
        theta = None if best is None else np.array([best[0][0], best[0][1], u_lo + span * _expit(best[0][2])])
    if theta is None:  # u pinned at the ceiling (also when a free u ran off to the ceiling: singular fit)
        helper_point = None
        lower, upper = np.array([-K_MAX, -Z_LIM, ceiling]), np.array([K_MAX, Z_LIM, ceiling])
        best = fit_curve(lambda zv, k, z0: sigmoid(np.array([k, z0, ceiling]), zv, g, link), z, pts.acc, sigma,
                         inits, jac=lambda zv, k, z0: sigmoid_jac(np.array([k, z0, ceiling]), zv, g, link)[:, :2])
        theta = None if best is None else np.append(best[0], ceiling)
    if theta is None:
        raise Refusal(Reason.FIT_FAILED, f"the {what} sigmoid did not converge from any initialisation "
                      "(or its covariance was not estimable)")
    if abs(theta[0]) >= K_MAX * (1 - gates.bound_rtol) or abs(theta[1]) >= Z_LIM * (1 - gates.bound_rtol):
        raise Refusal(Reason.SLOPE_AT_BOUND, f"the {what} sigmoid is at its limit (k={theta[0]:.3g}, "
                      f"z0={theta[1]:.3g}): the accuracy points look like a step, so the curve is not identified")
    return AccuracyFit(np.clip(theta, lower, upper), lower, upper, center, scale, g, helper_point, link)


def _sigmoid_inits(z: np.ndarray, acc: np.ndarray, w: np.ndarray, g: float, u: float,
                   slope_scale: float) -> list[tuple[float, float]]:
    """Logit-linear weighted regression, plus a few fixed slopes of either sign (scaled for the link)."""
    q = np.clip((acc - g) / max(u - g, 1e-9), 0.02, 0.98)
    logit = np.log(q / (1 - q))
    inits: list[tuple[float, float]] = []
    if np.ptp(z) > 0:
        slope, icpt = np.polyfit(z, logit, 1, w=np.sqrt(w * q * (1 - q)))
        if slope != 0 and np.isfinite(slope) and abs(icpt / slope) < Z_LIM:
            inits.append((float(np.clip(slope * slope_scale, -K_MAX / 2, K_MAX / 2)), float(-icpt / slope)))
    zm = float(np.median(z))
    inits += [(-3.0 * slope_scale, zm), (3.0 * slope_scale, zm)]
    return inits


def sigmoid_bootstrap(af: AccuracyFit, y_reps: np.ndarray, acc_reps: np.ndarray, weight: np.ndarray,
                      cfg: ForecastConfig) -> np.ndarray:
    """``(B, 3)`` refitted sigmoid parameters for replicate proxy values and accuracies (NaN where failed)."""
    z = (y_reps - af.center) / af.scale
    w = np.broadcast_to(weight, z.shape)
    if af.helper is not None:
        hz, ha, hw = af.helper
        b = z.shape[0]
        z = np.column_stack([z, np.full(b, hz)])
        acc_reps = np.column_stack([acc_reps, np.full(b, ha)])
        w = np.column_stack([w, np.full(b, hw)])
    ok = np.isfinite(z) & np.isfinite(acc_reps)
    z, acc_reps, w = np.where(ok, z, 0.0), np.where(ok, acc_reps, 0.0), np.where(ok, w, 0.0)
    return kstep_refit(lambda th: sigmoid(th, z, af.g, af.link), lambda th: sigmoid_jac(th, z, af.g, af.link),
                       af.theta, acc_reps, w, af.lower, af.upper, steps=cfg.kstep)
