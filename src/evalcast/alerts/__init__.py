"""Alerts raised from the run history: early stop (target reached, plateau, regression) and data mix."""

from evalcast.alerts.base import Alert, AlertKind, AlertRule, Level

__all__ = ["Alert", "AlertKind", "AlertRule", "Level"]
