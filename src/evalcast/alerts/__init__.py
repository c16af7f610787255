"""Alerts raised from the run history: early stop (target reached, plateau, regression) and data mix.

Rules are off unless passed to ``Monitor(alerts=[...])``; each is a frozen dataclass whose
``check(history)`` returns at most one :class:`Alert`, with hysteresis read from the history itself.
"""

from evalcast.alerts.base import Alert, AlertKind, AlertRule, Level
from evalcast.alerts.datamix import DomainRegression, DomainShortfall, suggest_weights
from evalcast.alerts.history import Direction
from evalcast.alerts.rules import ForecastPlateau, ProxyPlateau, Regression, TargetReached

__all__ = ["Alert", "AlertKind", "AlertRule", "Direction", "DomainRegression", "DomainShortfall", "ForecastPlateau",
           "Level", "ProxyPlateau", "Regression", "TargetReached", "suggest_weights"]
