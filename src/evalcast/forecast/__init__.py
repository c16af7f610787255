"""Forecasts of downstream accuracy to the end of the training budget, computed live from a run's history.

Pure numpy/scipy/scikit-learn. The monitor calls :func:`forecast_task` at every checkpoint; it never
raises and returns a :class:`TaskForecast` (evalcast's two-step forecast, baselines, cluster breakdown,
chosen proxy, the data fitted) that round-trips through ``to_dict`` / ``from_dict``.
"""

from evalcast.forecast.api import forecast_run, forecast_task
from evalcast.forecast.config import ClusterConfig, ForecastConfig, GateConfig
from evalcast.forecast.gates import Reason
from evalcast.forecast.inputs import Anchor, Checkpoints, Schedule, TaskInputs
from evalcast.forecast.results import (
    ClusterBreakdown,
    ClusterForecast,
    FitData,
    Forecast,
    ForecastCurve,
    ProxyChoice,
    TaskForecast,
)
from evalcast.forecast.schedule import annealing_areas, lr_phases

__all__ = [
    "Anchor", "Checkpoints", "ClusterBreakdown", "ClusterConfig", "ClusterForecast", "FitData", "Forecast",
    "ForecastConfig", "ForecastCurve", "GateConfig", "ProxyChoice", "Reason", "Schedule", "TaskForecast", "TaskInputs",
    "annealing_areas", "forecast_run", "forecast_task", "lr_phases",
]
