"""Baselines that use reference runs, in the same form as evalcast's forecast.

* ``prior_only``: the task's mean final value over the finished references, with a t prediction interval
  ``mean ± t·sd·√(1 + 1/R)`` (needs two finished references).
* ``pilot_ratio``: a reference's final value scaled by how far this run is above the floor relative to that
  reference at the same budget fraction, ``g + (final_r − g)·(a_now − g)/(a_r(f) − g)``, with
  ``a_r(f)`` interpolated between the reference's anchors. The reference nearest in parameter count when
  sizes are known, else the mean over references; references still on the floor at f are skipped.
  Interval: the target's binomial noise carried through the ratio, plus the spread across references.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import t as student_t

from evalcast.forecast.gates import Reason
from evalcast.forecast.refdata import RunData
from evalcast.forecast.results import Forecast, ForecastCurve, refused

_Z80, _Z95 = 1.2816, 1.96


def _published(method: str, final: float, sd80: float, sd95: float, x_end: float, msg: str,
               params: dict[str, float], lo: float = 0.0, hi: float = 1.0) -> Forecast:
    i80 = (max(lo, final - sd80), min(hi, final + sd80))
    i95 = (max(lo, final - sd95), min(hi, final + sd95))
    curve = ForecastCurve((x_end,), (final,), (i80[0],), (i80[1],), (i95[0],), (i95[1],))
    return Forecast(method, "ok", "", msg, final=final, interval80=i80, interval95=i95, curve=curve, params=params)


def prior_only(runs: Sequence[RunData], x_end: float) -> Forecast:
    finals = np.array([r.final for r in runs if r.final is not None])
    if finals.size < 2:
        return refused("prior_only", Reason.TOO_FEW_REFERENCES.value, f"{finals.size} finished reference(s); "
                       "at least 2 are needed for a mean and its spread")
    mean, sd = float(finals.mean()), float(finals.std(ddof=1))
    scale = sd * np.sqrt(1.0 + 1.0 / finals.size)
    dof = finals.size - 1
    return _published("prior_only", mean, float(student_t.ppf(0.9, dof)) * scale,
                      float(student_t.ppf(0.975, dof)) * scale, x_end,
                      f"mean final value of {finals.size} finished references", {"n_references": float(finals.size)})


def accuracy_at(run: RunData, fraction: float) -> tuple[float, float] | None:
    """The run's anchor accuracy and SE interpolated at a budget fraction (None outside its anchors)."""
    a = run.anchors
    if a.size == 0:
        return None
    frac = run.x[a.index] / run.x_end
    if fraction < frac[0] - 1e-9 or fraction > frac[-1] + 1e-9:
        return None
    return float(np.interp(fraction, frac, a.acc)), float(np.interp(fraction, frac, a.se))


def pilot_ratio(target: RunData, runs: Sequence[RunData], g: float, u: float, n_params: float | None) -> Forecast:
    method = "pilot_ratio"
    a = target.anchors
    if a.size == 0:
        return refused(method, Reason.TOO_FEW_ANCHORS.value, "no anchor evaluation yet")
    now, se_now = float(a.acc[-1]), float(a.se[-1])
    f = float(target.x[a.index[-1]] / target.x_end)
    usable = []
    for r in runs:
        at = accuracy_at(r, f) if r.final is not None else None
        if at is not None and at[0] - g > 2.0 * at[1]:
            usable.append((r, at[0]))
    if not usable:
        return refused(method, Reason.TOO_FEW_REFERENCES.value, f"no finished reference is above its floor at "
                       f"{f:.0%} of its budget: there is no ratio to carry forward")
    sized = [(r, v) for r, v in usable if r.n_params]
    if n_params and sized:
        dist = [abs(np.log(float(r.n_params) / n_params)) for r, _ in sized]
        usable = [s for s, d in zip(sized, dist) if d <= min(dist) + 1e-9]
    preds = np.array([g + (float(r.final) - g) * (now - g) / (v - g) for r, v in usable])  # type: ignore[arg-type]
    slopes = np.array([(float(r.final) - g) / (v - g) for r, v in usable])  # type: ignore[arg-type]
    final = float(np.clip(preds.mean(), g, u))
    sd = float(np.sqrt((np.mean(slopes) * se_now) ** 2 + (preds.std(ddof=1) ** 2 if preds.size > 1 else 0.0)))
    names = ", ".join(r.name for r, _ in usable)
    return _published(method, final, _Z80 * sd, _Z95 * sd, target.x_end,
                      f"final values of {names} scaled by this run's accuracy over theirs at {f:.0%} of the budget",
                      {"fraction": f, "n_references": float(len(usable))})
