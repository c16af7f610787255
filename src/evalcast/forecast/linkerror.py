"""The accuracy link's own error as parameter uncertainty, for forecasts without reference runs.

The within-run bootstrap resamples the anchors' questions, which carries their binomial noise into the
sigmoid's parameters. The fit's weights ``1/(SE² + model_error²)`` also admit an error of the law itself
(``model_error`` per anchor), which resampling never produces. Its share of the parameter covariance is the
sandwich ``(JᵀWJ)⁻¹·JᵀW·diag(e²)·WJ·(JᵀWJ)⁻¹`` (J: the sigmoid's Jacobian at the fitted points, the
ceiling's helper point included in the bread only), with e the law's error estimated from the anchors'
residuals and shrunk to ``model_error`` (:func:`law_error`). Adding draws of it to each bootstrap
replicate makes the two shares sum to the fit's covariance.

The caller scales the draws by how far the forecast extrapolates the link beyond the anchors above the
floor (in units of their proxy range, at most 1): inside that range the anchors pin the curve and their
resampling carries its uncertainty (on simulated constant-LR runs forecast from 50%, adding the full share
moved 80% coverage from 0.90 to 0.975); beyond it the sigmoid's shape is assumed, and the error of that
assumption is what the draws add. They cannot rescue a far extrapolation (a steep sigmoid fitted to anchors
just off the floor saturates at the ceiling for every plausible slope): that case is refused by the
``link_extrapolation`` gate.
"""

from __future__ import annotations

import numpy as np

from evalcast.forecast.accuracy import AccuracyFit
from evalcast.forecast.laws import sigmoid_jac

#: Weight, in anchors, of the configured ``model_error`` against the error seen in the anchors' residuals.
PRIOR_ANCHORS = 1.0


def law_error(af: AccuracyFit, y: np.ndarray, acc: np.ndarray, se: np.ndarray, model_error: float) -> float:
    """The law's error per anchor: the residual scatter beyond binomial noise, ``Σ(r² − SE²)/(m − p)``, pooled
    with ``model_error`` as a prior worth :data:`PRIOR_ANCHORS` anchors (a scaled inverse-χ² prior). With
    as many anchors as parameters it is ``model_error``; with many well-fitted anchors it goes to what they
    show."""
    dof = max(acc.size - int(np.sum(af.upper > af.lower)), 0)
    if dof == 0:
        return model_error
    resid = np.asarray(acc, dtype=float) - af.predict(np.asarray(y, dtype=float))
    seen = max(float(np.sum(resid**2 - np.asarray(se, dtype=float) ** 2)) / dof, 0.0)
    return float(np.sqrt((dof * seen + PRIOR_ANCHORS * model_error**2) / (dof + PRIOR_ANCHORS)))


def model_error_draws(af: AccuracyFit, y: np.ndarray, weight: np.ndarray, model_error: float, n: int,
                      rng: np.random.Generator) -> np.ndarray:
    """``(n, 3)`` parameter perturbations for the law's own error (zeros where a parameter is fixed)."""
    z = (np.asarray(y, dtype=float) - af.center) / af.scale
    jac = sigmoid_jac(af.theta, z, af.g, af.link)
    w = np.asarray(weight, dtype=float)
    free = af.upper > af.lower
    jf = jac[:, free]
    bread_inv = jf.T @ (w[:, None] * jf)
    if af.helper is not None:
        hz, _, hw = af.helper
        hj = sigmoid_jac(af.theta, np.array([hz]), af.g, af.link)[:, free]
        bread_inv = bread_inv + hw * hj.T @ hj
    meat = jf.T @ ((w**2 * model_error**2)[:, None] * jf)
    bread = np.linalg.pinv(bread_inv)
    cov = bread @ meat @ bread
    out = np.zeros((n, jac.shape[1]))
    if np.all(np.isfinite(cov)):
        out[:, free] = rng.multivariate_normal(np.zeros(int(free.sum())), (cov + cov.T) / 2, size=n, method="eigh")
    return out


def perturbed(af: AccuracyFit, theta: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Replicate parameters plus draws, kept within the bounds and on the fitted slope's side of zero."""
    out = np.clip(theta + draws, af.lower, af.upper)
    k0 = float(af.theta[0])
    out[:, 0] = np.where(np.sign(out[:, 0]) == np.sign(k0), out[:, 0], np.sign(k0) * 1e-6)
    return out
