"""Every configuration and alert rule rejects a bad value of every field at construction, with a
``ValueError`` naming the field: a mistake must never surface later, inside training.

The classes are discovered by walking the package (every class named ``*Config``, every alert rule), so
a new configuration is swept without anyone adding it here; companion tests check that the discovery
finds the configurations it must, and that no configuration hides under another suffix.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import pkgutil
import typing
from collections.abc import Iterator
from typing import Any, Literal, Union

import pytest

import evalcast

#: Value types a user sets that are not named ``*Config`` (swept as well).
VALUE_TYPES = ("evalcast.monitor.config.Budget", "evalcast.data.records.FieldMap")
#: Valid values for required fields (those without a default), by field name.
REQUIRED = {"group": "all", "target": 0.5, "targets": {"add": 0.5, "sort": 0.5}}
#: Numeric fields where -1 is a valid setting (anything else must reject it).
NEGATIVE_ALLOWED = {"TargetReached.target"}  # e.g. a margin target below zero
#: Modules that import an optional framework or start a sandbox child (nothing configurable inside).
SKIPPED_MODULES = ("evalcast.generate._sandbox_child",)


def modules() -> Iterator[Any]:
    for info in pkgutil.walk_packages(evalcast.__path__, "evalcast."):
        if info.name not in SKIPPED_MODULES:
            yield importlib.import_module(info.name)


def discovered() -> list[type]:
    """Every configuration class defined in evalcast: ``*Config`` dataclasses, alert rules, value types."""
    found: dict[str, type] = {}
    for module in modules():
        for name, cls in vars(module).items():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__ or not dataclasses.is_dataclass(cls):
                continue
            path = f"{cls.__module__}.{cls.__qualname__}"
            is_rule = cls.__module__.startswith("evalcast.alerts.") and callable(getattr(cls, "check", None))
            if name.endswith("Config") or is_rule or path in VALUE_TYPES:
                found[path] = cls
    return [found[k] for k in sorted(found)]


CLASSES = discovered()


def baseline(cls: type) -> dict[str, Any]:
    """Keyword arguments of a valid instance: defaults, plus ``REQUIRED`` for fields without one."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            assert f.name in REQUIRED, f"{cls.__name__}.{f.name} has no default: add a valid value to REQUIRED"
            kwargs[f.name] = REQUIRED[f.name]
    return kwargs


def bad_values(hint: Any) -> list[Any]:
    """Values no field of this type may take: the wrong type always; NaN for floats; -1 for numbers."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union or origin is type(int | None):
        return [v for a in args if a is not type(None) for v in bad_values(a)]
    if origin is Literal:
        return ["no-such-choice", 3]
    if hint is bool:
        return ["yes", 1]
    if hint is int:
        return ["3", 2.5, -1]
    if hint is float:
        return ["3", math.nan, -1.0]
    if hint is str:
        return [3]
    if origin in (tuple, list):
        return [3, "abc", [object()]]
    if (origin is not None and "Mapping" in str(origin)) or origin is dict:
        return [3, {"task": "not a number"}]
    return ["not a config"]


CASES = [(cls, f.name, value) for cls in CLASSES for f in dataclasses.fields(cls)
         for value in bad_values(typing.get_type_hints(cls)[f.name])
         if not (value == -1 and f"{cls.__name__}.{f.name}" in NEGATIVE_ALLOWED)]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_config_builds_with_its_defaults_and_is_frozen(cls: type) -> None:
    config = cls(**baseline(cls))
    assert dataclasses.fields(cls) and cls.__dataclass_params__.frozen, f"{cls.__name__} must be a frozen dataclass"
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, dataclasses.fields(cls)[0].name, None)


@pytest.mark.parametrize(("cls", "field", "value"), CASES,
                         ids=[f"{c.__name__}.{f}={v!r}" for c, f, v in CASES])
def test_a_bad_value_of_any_field_fails_at_construction_naming_it(cls: type, field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.{field}="):
        cls(**{**baseline(cls), field: value})


def test_the_sweep_finds_the_configurations_it_must() -> None:
    """The discovery is not vacuous: every configuration a user sets is in the sweep, with its fields."""
    names = {c.__name__ for c in CLASSES}
    must = {"MonitorConfig", "StatsConfig", "TokenizeConfig", "PromptConfig", "AnchorConfig", "DecodeConfig",
            "SandboxConfig", "ProbeConfig", "NetConfig", "ForecastConfig", "GateConfig", "ClusterConfig",
            "DemoConfig", "Budget", "FieldMap", "TargetReached", "ForecastPlateau", "ProxyPlateau", "Regression",
            "DomainRegression", "DomainShortfall"}
    assert must <= names, must - names
    assert len(CASES) > 300


def test_no_configuration_hides_under_another_suffix() -> None:
    """"Config" is the one suffix: no evalcast dataclass is named *Settings, *Spec, *Options or *Format."""
    hidden = [f"{m.__name__}.{n}" for m in modules() for n, c in vars(m).items()
              if inspect.isclass(c) and c.__module__ == m.__name__ and dataclasses.is_dataclass(c)
              and n.endswith(("Settings", "Spec", "Options", "Params", "Format"))]
    assert hidden == ["evalcast.forecast.simulate.SimSpec"]  # a simulated run's scenario, not a setting


def test_the_checks_the_issues_named() -> None:
    from evalcast import AnchorConfig, ForecastConfig

    with pytest.raises(ValueError, match=r"AnchorConfig\.every=0 is out of range: allowed >= 1"):
        AnchorConfig(every=0)
    with pytest.raises(ValueError, match=r"ForecastConfig\.every=0 is out of range: allowed >= 1"):
        ForecastConfig(every=0)
    with pytest.raises(ValueError, match=r"ForecastConfig\.chance: the floor of 'add' is not below its ceiling"):
        ForecastConfig(chance={"add": 0.5}, ceiling={"add": 0.5})
    assert AnchorConfig(steps=[10, 20]).steps == (10, 20)  # sequences are stored as tuples


def test_the_sweep_catches_a_config_that_checks_nothing() -> None:
    @dataclasses.dataclass(frozen=True)
    class LooseConfig:
        every: int = 1

    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        test_a_bad_value_of_any_field_fails_at_construction_naming_it(LooseConfig, "every", -1)
