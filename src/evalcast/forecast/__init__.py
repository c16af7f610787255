"""Forecasts of downstream accuracy to the end of the training budget, computed live from a run's history.

Pure numpy/scipy/scikit-learn. The monitor calls :func:`forecast_task` at every checkpoint; it never
raises and returns a :class:`TaskForecast` (evalcast's two-step forecast, baselines, cluster breakdown,
chosen proxy, the data fitted) that round-trips through ``to_dict`` / ``from_dict``. With reference runs
of the same task (:class:`ReferenceRun`, prepared once per task by :func:`prepare_references`) the
forecast transfers the proxy's decay shape and the accuracy link from them, with conformal intervals.
"""

from evalcast.forecast.api import forecast_run, forecast_task
from evalcast.forecast.calibration import ReferenceSet, coverage_interval, prepare_references
from evalcast.forecast.config import ClusterConfig, ForecastConfig, GateConfig, ReferenceConfig
from evalcast.forecast.gates import Reason
from evalcast.forecast.inputs import Anchor, Checkpoints, Schedule, TaskInputs
from evalcast.forecast.references import ReferenceRun
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
    "ForecastConfig", "ForecastCurve", "GateConfig", "ProxyChoice", "Reason", "ReferenceConfig", "ReferenceRun",
    "ReferenceSet", "Schedule", "TaskForecast", "TaskInputs", "annealing_areas", "coverage_interval", "forecast_run",
    "forecast_task", "lr_phases", "prepare_references",
]
