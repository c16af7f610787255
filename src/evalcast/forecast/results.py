"""Forecast results: small frozen dataclasses, JSON-serialisable with ``to_dict`` / ``from_dict``.

Floats that are not finite are written as ``None`` and read back as NaN; tuples are written as lists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "refused"]


def _f(v: float | None) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def _fs(vs: Sequence[float]) -> list[float | None]:
    return [_f(v) for v in vs]


def _rf(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _rfs(vs: Sequence[Any]) -> tuple[float, ...]:
    return tuple(_rf(v) for v in vs)


@dataclass(frozen=True)
class ForecastCurve:
    """Forecast along the compute axis: point forecast and 80% / 95% bands."""

    x: tuple[float, ...]
    mean: tuple[float, ...]
    lo80: tuple[float, ...] = ()
    hi80: tuple[float, ...] = ()
    lo95: tuple[float, ...] = ()
    hi95: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {k: _fs(getattr(self, k)) for k in ("x", "mean", "lo80", "hi80", "lo95", "hi95")}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ForecastCurve:
        return cls(**{k: _rfs(d.get(k, ())) for k in ("x", "mean", "lo80", "hi80", "lo95", "hi95")})


@dataclass(frozen=True)
class Forecast:
    """One forecaster's answer: the final value at the budget's end with intervals, or a refusal.

    ``reason`` is a machine-readable code (empty when ok; see :mod:`evalcast.forecast.gates`) and
    ``message`` a sentence for humans. A refused forecast publishes no number (``final`` is None).
    """

    method: str
    status: Status
    reason: str = ""
    message: str = ""
    final: float | None = None
    interval80: tuple[float, float] | None = None
    interval95: tuple[float, float] | None = None
    curve: ForecastCurve | None = None
    params: Mapping[str, float] = field(default_factory=dict)
    flags: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method, "status": self.status, "reason": self.reason, "message": self.message,
            "final": _f(self.final),
            "interval80": _fs(self.interval80) if self.interval80 else None,
            "interval95": _fs(self.interval95) if self.interval95 else None,
            "curve": self.curve.to_dict() if self.curve else None,
            "params": {k: _f(v) for k, v in self.params.items()},
            "flags": list(self.flags),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Forecast:
        def pair(v: Any) -> tuple[float, float] | None:
            return (_rf(v[0]), _rf(v[1])) if v else None

        return cls(
            method=d["method"], status=d["status"], reason=d.get("reason", ""), message=d.get("message", ""),
            final=None if d.get("final") is None else float(d["final"]),
            interval80=pair(d.get("interval80")), interval95=pair(d.get("interval95")),
            curve=ForecastCurve.from_dict(d["curve"]) if d.get("curve") else None,
            params={k: _rf(v) for k, v in d.get("params", {}).items()},
            flags=tuple(d.get("flags", ())),
        )


def refused(method: str, reason: str, message: str, *, params: Mapping[str, float] | None = None,
            flags: Sequence[str] = ()) -> Forecast:
    """A refusal: no number, a reason code and a sentence."""
    return Forecast(method=method, status="refused", reason=reason, message=message, params=dict(params or {}),
                    flags=tuple(flags))


@dataclass(frozen=True)
class ClusterForecast:
    """One difficulty cluster: its size, share of the questions, last observed accuracy and forecast."""

    label: int
    size: int
    share: float
    last_accuracy: float
    emergent: bool
    forecast: Forecast

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "size": self.size, "share": _f(self.share),
                "last_accuracy": _f(self.last_accuracy), "emergent": self.emergent,
                "forecast": self.forecast.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClusterForecast:
        return cls(label=int(d["label"]), size=int(d["size"]), share=_rf(d["share"]),
                   last_accuracy=_rf(d["last_accuracy"]), emergent=bool(d["emergent"]),
                   forecast=Forecast.from_dict(d["forecast"]))


@dataclass(frozen=True)
class ClusterBreakdown:
    """Per-difficulty-cluster forecasts and their size-weighted aggregate."""

    method: str
    """"meanshift" or "quantile_bins"."""
    law: str
    n_outliers: int
    clusters: tuple[ClusterForecast, ...]
    aggregate: Forecast

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "law": self.law, "n_outliers": self.n_outliers,
                "clusters": [c.to_dict() for c in self.clusters], "aggregate": self.aggregate.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClusterBreakdown:
        return cls(method=d["method"], law=d["law"], n_outliers=int(d["n_outliers"]),
                   clusters=tuple(ClusterForecast.from_dict(c) for c in d["clusters"]),
                   aggregate=Forecast.from_dict(d["aggregate"]))


@dataclass(frozen=True)
class ProxyChoice:
    """Which proxy the forecast uses and why (backtest MAE per candidate; NaN where it failed)."""

    name: str
    method: str
    """"backtest", "default" (too few anchors) or "only_candidate"."""
    scores: Mapping[str, float] = field(default_factory=dict)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "scores": {k: _f(v) for k, v in self.scores.items()},
                "message": self.message}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProxyChoice:
        return cls(name=d["name"], method=d["method"], scores={k: _rf(v) for k, v in d.get("scores", {}).items()},
                   message=d.get("message", ""))


@dataclass(frozen=True)
class FitData:
    """The data the evalcast forecast was fitted on (for plots, audits and resumption)."""

    x: tuple[float, ...]
    """Compute of every checkpoint."""
    proxy: tuple[float, ...]
    """Raw proxy per checkpoint."""
    y: tuple[float, ...]
    """Smoothed loss-like transform ``sign·proxy + offset`` per checkpoint."""
    window: tuple[int, int]
    """Checkpoint indices ``[start, stop)`` of the proxy~compute fit."""
    sign: float
    offset: float
    """NaN for a scale that is not affine (``multipower:neg_log``: y = −log proxy)."""
    law: str
    """"power" or "annealing"; with references "multipower:<scale>" (identity, neg_log, one_minus)."""
    accuracy_source: str
    anchor_index: tuple[int, ...] = ()
    anchor_accuracy: tuple[float, ...] = ()
    anchor_se: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"x": _fs(self.x), "proxy": _fs(self.proxy), "y": _fs(self.y), "window": list(self.window),
                "sign": _f(self.sign), "offset": _f(self.offset), "law": self.law,
                "accuracy_source": self.accuracy_source, "anchor_index": list(self.anchor_index),
                "anchor_accuracy": _fs(self.anchor_accuracy), "anchor_se": _fs(self.anchor_se)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FitData:
        return cls(x=_rfs(d["x"]), proxy=_rfs(d["proxy"]), y=_rfs(d["y"]),
                   window=(int(d["window"][0]), int(d["window"][1])), sign=_rf(d["sign"]),
                   offset=_rf(d["offset"]), law=d["law"], accuracy_source=d["accuracy_source"],
                   anchor_index=tuple(int(i) for i in d.get("anchor_index", ())),
                   anchor_accuracy=_rfs(d.get("anchor_accuracy", ())), anchor_se=_rfs(d.get("anchor_se", ())))


@dataclass(frozen=True)
class TaskForecast:
    """Everything evalcast forecasts for one task at one checkpoint.

    ``forecast`` is evalcast's two-step forecast (proxy~compute then accuracy~proxy); ``baselines`` the
    compute-only, loss-based and last-value forecasts in the same form; ``clusters`` the per-difficulty
    breakdown. ``status``/``reason``/``message`` repeat the verdict of ``forecast``.
    """

    task: str
    status: Status
    reason: str
    message: str
    x_end: float
    x_last: float
    forecast: Forecast
    proxy: ProxyChoice | None = None
    baselines: Mapping[str, Forecast] = field(default_factory=dict)
    clusters: ClusterBreakdown | None = None
    data: FitData | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "status": self.status, "reason": self.reason, "message": self.message,
            "x_end": _f(self.x_end), "x_last": _f(self.x_last), "forecast": self.forecast.to_dict(),
            "proxy": self.proxy.to_dict() if self.proxy else None,
            "baselines": {k: v.to_dict() for k, v in self.baselines.items()},
            "clusters": self.clusters.to_dict() if self.clusters else None,
            "data": self.data.to_dict() if self.data else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskForecast:
        return cls(
            task=d["task"], status=d["status"], reason=d.get("reason", ""), message=d.get("message", ""),
            x_end=_rf(d.get("x_end")), x_last=_rf(d.get("x_last")), forecast=Forecast.from_dict(d["forecast"]),
            proxy=ProxyChoice.from_dict(d["proxy"]) if d.get("proxy") else None,
            baselines={k: Forecast.from_dict(v) for k, v in d.get("baselines", {}).items()},
            clusters=ClusterBreakdown.from_dict(d["clusters"]) if d.get("clusters") else None,
            data=FitData.from_dict(d["data"]) if d.get("data") else None,
        )
