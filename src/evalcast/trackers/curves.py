"""Plain views of a forecast :class:`~evalcast.trackers.base.Curve` that every backend shares.

A curve holds x values, named y series over them (``forecast`` plus the interval bounds ``lo80``,
``hi80``, ``lo95``, ``hi95``, or any other line) and the observed anchor points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import TYPE_CHECKING, Any

from evalcast.trackers.base import Curve

if TYPE_CHECKING:
    from evalcast.forecast.results import TaskForecast

#: Interval bounds drawn as shaded bands, widest first: ``(lower, upper, coverage)``.
BANDS: tuple[tuple[str, str, int], ...] = (("lo95", "hi95", 95), ("lo80", "hi80", 80))
#: The series holding the central forecast.
FORECAST = "forecast"


def forecast_curve(group: str, result: TaskForecast, x_name: str) -> Curve | None:
    """The fan chart of a published forecast: its line, 80% and 95% bands, and the anchors it was fit on."""
    curve = result.forecast.curve
    if not result.forecast.ok or curve is None:
        return None
    series = {FORECAST: curve.mean, **{k: getattr(curve, k) for k in ("lo80", "hi80", "lo95", "hi95")
                                       if getattr(curve, k)}}
    observed_x, observed_y = (), ()
    if result.data is not None and result.data.anchor_index:
        observed_x = tuple(result.data.x[i] for i in result.data.anchor_index)
        observed_y = result.data.anchor_accuracy
    title = f"{group}: pass@1 forecast {result.forecast.final:.3f} (proxy {result.proxy.name if result.proxy else '?'})"
    return Curve(x=curve.x, series=series, x_name=x_name, observed_x=observed_x, observed_y=observed_y,
                 title=title, meta={"current_x": result.x_last, "x_end": result.x_end})


def check_curve(curve: Curve, *, where: str) -> None:
    """Raise ``ValueError`` for an empty curve or a series / observed points not matching their x values."""
    if not curve.series and not len(curve.observed_x):
        raise ValueError(f"{where}: the curve has no series and no observed points; nothing to draw")
    n = len(curve.x)
    for key, ys in curve.series.items():
        if len(ys) != n:
            raise ValueError(f"{where}: series {key!r} has {len(ys)} values but x has {n}; "
                             "give every series one value per x")
    if len(curve.observed_x) != len(curve.observed_y):
        raise ValueError(f"{where}: {len(curve.observed_x)} observed_x but {len(curve.observed_y)} "
                         "observed_y; give one y per observed x")


def final_metrics(name: str, curve: Curve) -> dict[str, float]:
    """The value of every series at the last x (the end of the budget), as scalars.

    ``forecast`` becomes ``<name>/final`` and any other series ``s`` becomes ``<name>/final_<s>``
    (``evalcast/gsm8k/forecast/final_lo80``). Empty when the curve has no x values.
    """
    if not len(curve.x):
        return {}
    return {f"{name}/final" if key == FORECAST else f"{name}/final_{key}": float(ys[-1])
            for key, ys in curve.series.items()}


def curve_table(curve: Curve) -> tuple[list[str], list[list[float | None]]]:
    """One wide table: ``[x_name, *series, "observed"]``.

    Forecast rows leave ``observed`` empty; observed rows leave the series empty.
    """
    keys = list(curve.series)
    columns = [curve.x_name, *keys, "observed"]
    rows: list[list[float | None]] = [
        [float(x), *(_num(curve.series[k][i]) for k in keys), None] for i, x in enumerate(curve.x)]
    rows += [[float(x), *([None] * len(keys)), _num(y)]
             for x, y in zip(curve.observed_x, curve.observed_y, strict=True)]
    return columns, rows


def curve_to_dict(curve: Curve) -> dict[str, Any]:
    """A JSON-ready dict of the whole curve (non-finite numbers become ``None``)."""
    return {
        "title": curve.title,
        "x_name": curve.x_name,
        "x": [_num(x) for x in curve.x],
        "series": {k: [_num(y) for y in ys] for k, ys in curve.series.items()},
        "observed_x": [_num(x) for x in curve.observed_x],
        "observed_y": [_num(y) for y in curve.observed_y],
        "meta": jsonable(curve.meta),
    }


def _num(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def jsonable(value: Any) -> Any:
    """``value`` with numbers as plain floats (non-finite ones as ``None``) and containers as lists/dicts."""
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, Real):
        return value if isinstance(value, int) else _num(float(value))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [jsonable(v) for v in value]
    return str(value)
