"""Alert rules: logic and hysteresis on synthetic histories, resume through a real run store, and real
training runs (a data mix that drops a domain, a run that plateaus, a healthy run)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from evalcast import ExpertSet, Monitor, MonitorConfig
from evalcast.alerts import (
    Alert,
    DomainRegression,
    DomainShortfall,
    ForecastPlateau,
    ProxyPlateau,
    Regression,
    TargetReached,
    suggest_weights,
)
from evalcast.forecast import Forecast, TaskForecast
from evalcast.runs import Record, RunStore


# ------------------------------------------------------------------------------ synthetic histories
def rec(step: int, metrics: Mapping[str, float] | None = None, *,
        forecasts: Mapping[str, TaskForecast] | None = None) -> Record:
    """One ok record; metric keys are ``group/metric``."""
    return Record(step=step, metrics={f"evalcast/{k}": v for k, v in (metrics or {}).items()},
                  forecasts=dict(forecasts or {}))


def skipped(step: int) -> Record:
    return Record(step=step, status="skipped", reason="rank 1: RuntimeError: boom")


def replay(rules: Sequence[Any], records: Sequence[Record], history: list[Record] | None = None) -> list[Record]:
    """Feed records one at a time, as the monitor does: each rule sees the history up to the current
    record, and the raised alerts are stored in that record."""
    history = [] if history is None else history
    for r in records:
        r = dataclasses.replace(r)
        history.append(r)
        if r.ok:
            r.alerts = tuple(a for rule in rules if (a := rule.check(history)) is not None)
    return history


def fired(history: Sequence[Record]) -> list[tuple[int, str]]:
    return [(r.step, a.rule) for r in history for a in r.alerts]


def nll_run(values: Sequence[float], group: str = "all") -> list[Record]:
    return [rec(10 * (i + 1), {f"{group}/nll": v}) for i, v in enumerate(values)]


def test_directions_are_known_or_must_be_given() -> None:
    with pytest.raises(ValueError, match="whether a higher 'entropy' is better or worse; give direction="):
        Regression("all", metric="entropy")
    assert Regression("all", metric="entropy", direction="lower").name == "regression:all/entropy"
    assert Regression("all", metric="nll.rarity").name == "regression:all/nll.rarity"  # weighting keeps direction
    with pytest.raises(ValueError, match="patience=0"):
        ProxyPlateau(patience=0)
    with pytest.raises(ValueError, match="at least 2 groups"):
        DomainShortfall({"add": 0.5})


def test_regression_ignores_one_noisy_point_fires_once_and_rearms_after_clearing() -> None:
    rule = Regression("all", tolerance=0.05, patience=3, cooldown=4)
    values = [2.0, 1.5, 1.2, 1.3, 1.1,  # one noisy point (1.3 > 1.2 + 0.05) does not fire
              1.14, 1.25, 1.3, 1.35, 1.4,  # worse than 1.1 + 0.05 from step 70 on (1.14 is within tolerance)
              1.0, 1.2, 1.2, 1.2]  # new best, then regressed again: re-armed (cleared) and cooldown passed
    history = replay([rule], nll_run(values))
    assert fired(history) == [(90, rule.name), (140, rule.name)]
    alert = history[8].alerts[0]
    assert alert.kind == "regression" and alert.groups == ("all",) and not alert.stop_training
    assert "worse than its best 1.1 (step 50) by more than 0.05 at 3 consecutive checkpoints (steps 70, 80, 90: " \
           "1.25, 1.3, 1.35)" in alert.text
    quick = replay([Regression("all", tolerance=0.05, patience=3, cooldown=10)], nll_run(values))
    assert [s for s, _ in fired(quick)] == [90]  # 140 is within 10 checkpoints of 90


def test_target_reached_counts_anchors_only_and_fires_once() -> None:
    rule = TargetReached("add", 0.5, patience=2, stop_training=True)
    anchors = {20: 0.3, 40: 0.55, 60: 0.6, 80: 0.4, 100: 0.7, 120: 0.8}
    records = [rec(s, {"add/nll": 1.0, **({"add/pass@1_anchor": anchors[s]} if s in anchors else {})})
               for s in range(10, 130, 10)]
    records.insert(5, skipped(55))
    history = replay([rule], records)
    assert fired(history) == [(60, "target_reached:add/pass@1_anchor")]  # 40 and 60: two anchors in a row
    alert = next(r for r in history if r.step == 60).alerts[0]
    assert alert.stop_training and alert.level == "INFO"
    assert "add pass@1_anchor >= 0.5 at 2 consecutive measured checkpoints (steps 40, 60: 0.55, 0.6)" in alert.text
    assert "Training stops" in alert.text
    again = replay([TargetReached("add", 0.5, patience=2, cooldown=2)], records)
    assert [s for s, _ in fired(again)] == [60, 120]  # fell below at 80, back at 100 and 120


def forecast_record(step: int, hi80: float | None, probe: float, *, anchor: float | None = None) -> Record:
    """A checkpoint with a published (``hi80`` given) or refused forecast for ``all``."""
    metrics = {"all/forecast_status": 1.0 if hi80 is not None else 0.0, "all/pass@1_probe": probe}
    if hi80 is not None:
        metrics.update({"all/forecast_final": hi80 - 0.02, "all/forecast_hi80": hi80})
    if anchor is not None:
        metrics["all/pass@1_anchor"] = anchor
    forecast = TaskForecast("all", "ok", "", "", x_end=1000.0, x_last=float(step * 5),
                            forecast=Forecast("evalcast", "ok"))
    return rec(step, metrics, forecasts={"all": forecast})


def test_forecast_plateau_needs_consecutive_published_forecasts() -> None:
    rule = ForecastPlateau(min_gain=0.02, patience=2)
    records = [forecast_record(10, 0.60, 0.30), forecast_record(20, 0.50, 0.49),
               forecast_record(30, None, 0.50),  # refused: breaks the streak
               forecast_record(40, 0.51, 0.50), forecast_record(50, 0.52, 0.505), forecast_record(60, 0.52, 0.51)]
    history = replay([rule], records)
    assert fired(history) == [(50, "plateau:all/forecast")]
    alert = history[4].alerts[0]
    assert alert.stop_training and alert.kind == "plateau"
    assert ("forecast of the final pass@1 is 0.5 (80% upper bound 0.52), at most 0.015 above the current 0.505 "
            "(probe) with 75% of the budget left") in alert.text
    by_anchor = replay([ForecastPlateau(min_gain=0.02, patience=1, current="anchor")],
                       [forecast_record(10, 0.6, 0.1, anchor=0.59), forecast_record(20, 0.6, 0.1)])
    assert [s for s, _ in fired(by_anchor)] == [10]  # the latest anchor stands for "now" until the next one


def test_proxy_plateau_fires_on_a_flat_proxy_not_on_a_falling_one() -> None:
    rule = ProxyPlateau("all", window=2, min_delta=0.01, patience=2, stop_training=True)
    assert fired(replay([rule], nll_run([3.0, 2.5, 2.2, 2.0, 1.9, 1.85]))) == []
    history = replay([rule], nll_run([3.0, 2.5, 2.2, 2.2, 2.2, 2.2, 2.2]))
    assert fired(history) == [(60, "plateau:all/nll")]  # windows 30→50 and 40→60 both flat
    assert "went from 2.2 (step 40) to 2.2 (step 60), an improvement of 0" in history[5].alerts[0].text


def test_proxy_plateau_holds_while_the_learning_rate_is_high() -> None:
    rule = ProxyPlateau("all", window=2, min_delta=0.01, patience=2)
    flat = nll_run([3.0, 2.5, 2.2, 2.2, 2.2, 2.2, 2.2])

    def with_lr(lrs: Sequence[float]) -> list[Record]:
        return [dataclasses.replace(r, train={"lr": lr}) for r, lr in zip(flat, lrs)]

    assert fired(replay([rule], with_lr([1e-3] * 7))) == []  # constant LR: a WSD stable phase may follow
    decayed = with_lr([1e-3, 1e-3, 1e-3, 1e-3, 4e-4, 2e-4, 1e-4])  # at or below half the peak from step 50
    assert fired(replay([rule], decayed)) == [(60, "plateau:all/nll")]
    assert fired(replay([dataclasses.replace(rule, max_lr_fraction=None)], with_lr([1e-3] * 7))) == [
        (60, "plateau:all/nll")]
    with pytest.raises(ValueError, match="max_lr_fraction"):
        ProxyPlateau(max_lr_fraction=0.0)


def domains(step: int, arith: float, lst: float, logic: float) -> Record:
    return rec(step, {"all/nll": (arith + lst + logic) / 3, "domain/arith/nll": arith, "domain/list/nll": lst,
                      "domain/logic/nll": logic, "domain/arith/add/nll": arith, "add/nll": arith,
                      "cost/seconds": 1.0})


def test_domain_regression_names_the_domain_and_suggests_boosting_it() -> None:
    rule = DomainRegression(tolerance=0.02, window=1, patience=2)
    rows = [(2.0, 2.0, 2.0), (1.5, 1.2, 1.6), (1.3, 1.1, 1.4),
            (1.2, 1.3, 1.3), (1.1, 1.6, 1.2), (1.0, 1.9, 1.1)]  # list regresses from step 40 while others improve
    history = replay([rule], [domains(10 * (i + 1), *r) for i, r in enumerate(rows)])
    assert fired(history) == [(50, "data_mix:regression")]
    alert = history[4].alerts[0]
    assert alert.kind == "data_mix" and alert.groups == ("domain/list",)
    assert set(alert.suggestion) == {"domain/arith", "domain/list", "domain/logic"}
    assert sum(alert.suggestion.values()) == pytest.approx(1.0)
    assert max(alert.suggestion, key=alert.suggestion.get) == "domain/list"
    assert alert.suggestion["domain/list"] == pytest.approx((1 + 0.5 / 1.1) / (3 + 0.5 / 1.1))
    assert "domain/list nll rose from its best 1.1 (step 30) to 1.6" in alert.text
    assert "Suggested weights: domain/list 0.42, domain/arith 0.29, domain/logic 0.29." in alert.text
    together = [(2.0, 2.0, 2.0), (1.5, 1.2, 1.6), (1.6, 1.4, 1.7), (1.7, 1.6, 1.8), (1.8, 1.8, 1.9)]
    assert fired(replay([rule], [domains(10 * (i + 1), *r) for i, r in enumerate(together)])) == []


def test_domain_shortfall_needs_one_group_on_track() -> None:
    rule = DomainShortfall({"add": 0.6, "sort": 0.5, "chain": 0.5}, patience=2)

    def at(step: int, add: float, sort: float, chain: float | None) -> Record:
        metrics = {"add/forecast_status": 1.0, "add/forecast_final": add, "sort/forecast_status": 1.0,
                   "sort/forecast_final": sort, "chain/forecast_status": 1.0}
        if chain is not None:
            metrics["chain/forecast_final"] = chain
        return rec(step, metrics)

    all_short = [at(10, 0.2, 0.3, 0.1), at(20, 0.3, 0.3, 0.2)]
    assert fired(replay([rule], all_short)) == []  # nobody on track: not a mixture problem
    history = replay([rule], [at(10, 0.2, 0.3, None), at(20, 0.3, 0.55, 0.4), at(30, 0.35, 0.6, 0.45)])
    assert fired(history) == [(30, "data_mix:shortfall")]
    alert = history[-1].alerts[0]
    assert alert.groups == ("add", "chain")
    assert "add at 0.35, target 0.6; chain at 0.45, target 0.5" in alert.text
    assert "while sort (0.6 >= 0.5) is on track" in alert.text
    assert alert.suggestion == pytest.approx(suggest_weights(["add", "sort", "chain"],
                                                             {"add": 0.25 / 0.6, "chain": 0.05 / 0.5}, 1.0))


def test_a_resumed_run_decides_exactly_as_an_uninterrupted_one(tmp_path: Path) -> None:
    """Hysteresis lives in the history: a run that crashed, lost a future and resumed decides the same."""
    def rules() -> list[Any]:
        return [Regression("all", tolerance=0.05, patience=2, cooldown=3), ProxyPlateau(window=2, patience=2),
                DomainRegression(window=1, patience=2)]

    values = [2.0, 1.6, 1.3, 1.4, 1.45, 1.5, 1.2, 1.1, 1.3, 1.35, 1.4, 1.45, 1.0, 0.9]
    records = [domains(10 * (i + 1), v, v + (0.3 * i if i > 7 else 0.0), v) for i, v in enumerate(values)]
    records.insert(4, skipped(45))
    straight = replay(rules(), records)
    assert len(fired(straight)) >= 3

    store = RunStore(tmp_path / "run")
    lost = [domains(s, 3.0, 3.0, 3.0) for s in (90, 100, 110)]  # a future that regressed everywhere ...
    for r in replay(rules(), [*records[:9], *lost]):
        store.append(r)
    assert {s for s, _ in fired(store.history())} & {90, 100, 110}  # ... and raised alerts
    store.rewind(80)  # training resumed from the checkpoint at step 80: that future never happened
    resumed = replay(rules(), records[9:], RunStore(tmp_path / "run").history())  # a fresh process
    for r in resumed[9:]:
        store.append(r)
    assert fired(resumed) == fired(straight)
    assert fired(RunStore(tmp_path / "run").history()) == fired(straight)


# ------------------------------------------------------------------------------ real training runs
TASKS = {"add": 1.0, "sort": 1.0, "chain": 1.0}
LEVELS = (1, 2)


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ExpertSet]:
    from evalcast.tasks import CHARSET, get_task
    from evalcast.toy import char_tokenizer

    tok = char_tokenizer(CHARSET)
    records = [r for t in TASKS for r in get_task(t).sample(20, seed=0, difficulties=LEVELS)]
    return tok, ExpertSet(records, tok, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


class MixStream(torch.utils.data.IterableDataset):
    """Training examples that follow a :class:`~evalcast.tasks.MixSchedule`, batch by batch."""

    def __init__(self, tok: Any, schedule: Any, batch_size: int) -> None:
        self.tok, self.schedule, self.batch_size = tok, schedule, batch_size

    def __iter__(self):
        from evalcast.tasks import training_stream
        from evalcast.toy import TextDataset

        for texts in training_stream(self.schedule, self.batch_size, seed=0, difficulties=LEVELS):
            batch = TextDataset(self.tok, texts, 64)
            yield from (batch[i] for i in range(len(batch)))


def train(setting: tuple[Any, ExpertSet], out: Path, schedule: Any, rules: Sequence[Any], *, max_steps: int,
          lr_until: int | None = None) -> tuple[Any, Monitor, list[Alert]]:
    """A real HF Trainer run with evalcast at every save (every 10 steps); returns the trainer, the
    monitor and what the on_alert hook received."""
    from transformers import Trainer, TrainingArguments

    from evalcast.callbacks.transformers import TransformersCallback
    from evalcast.toy import tiny_gpt2

    logging.getLogger("transformers").setLevel(logging.ERROR)
    tok, experts = setting
    received: list[Alert] = []
    monitor = Monitor(experts, run_dir=out / "evalcast", config=MonitorConfig(pad_multiple=16), forecast=None,
                      alerts=rules, on_alert=[received.append])
    model = tiny_gpt2(tok, n_layer=2, n_embd=64, n_head=4, n_positions=64)
    optimizers: Any = (None, None)
    if lr_until is not None:  # the learning rate drops to 0: nothing is learnt after lr_until
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        optimizers = (opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 if s < lr_until else 0.0))
    args = TrainingArguments(output_dir=str(out / "hf"), max_steps=max_steps, per_device_train_batch_size=16,
                             learning_rate=3e-3, lr_scheduler_type="constant", save_steps=10, save_total_limit=1,
                             save_only_model=True, logging_steps=10, report_to=[], use_cpu=True, seed=0,
                             disable_tqdm=True, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=MixStream(tok, schedule, 16), optimizers=optimizers,
                      callbacks=[TransformersCallback(monitor, log_to_trainer="none")])
    trainer.train()
    return trainer, monitor, received


def mix_rules() -> list[Any]:
    return [DomainRegression(), *(Regression(t) for t in TASKS), ProxyPlateau()]


def test_dropping_a_domain_midway_raises_a_data_mix_alert_naming_it(setting, tmp_path: Path) -> None:
    from evalcast.tasks import MixSchedule

    schedule = MixSchedule.constant(TASKS).dropping("sort", 60)  # sort is the only task of domain/list
    _, monitor, received = train(setting, tmp_path, schedule, mix_rules(), max_steps=100)
    mix = [a for a in received if a.kind == "data_mix"]
    assert mix, [a.text for a in received]
    first = mix[0]
    assert first.groups == ("domain/list",) and 60 < first.step <= 90  # within 3 saves of the drop
    assert max(first.suggestion, key=first.suggestion.get) == "domain/list"
    assert "domain/list nll rose from its best" in first.text and "consider raising its weight" in first.text
    stored = [a for r in monitor.history() for a in r.alerts if a.kind == "data_mix"]
    assert stored[0] == first  # the run directory keeps what the hook received


def test_a_healthy_run_raises_nothing(setting, tmp_path: Path) -> None:
    from evalcast.tasks import MixSchedule

    trainer, monitor, received = train(setting, tmp_path, MixSchedule.constant(TASKS), mix_rules(), max_steps=100)
    history = monitor.history()
    assert trainer.state.global_step == 100 and [r.step for r in history] == list(range(10, 101, 10))
    assert received == [] and all(r.alerts == () for r in history)


def test_a_plateau_stops_the_hf_trainer_early(setting, tmp_path: Path) -> None:
    from evalcast.tasks import MixSchedule

    rule = ProxyPlateau("all", window=2, min_delta=1e-3, patience=2, stop_training=True)
    trainer, monitor, received = train(setting, tmp_path, MixSchedule.constant(TASKS), [rule], max_steps=300,
                                       lr_until=40)
    assert [(a.rule, a.step, a.stop_training) for a in received] == [("plateau:all/nll", 70, True)]
    assert trainer.state.global_step == 70  # stopped at the save that raised it, not at max_steps
    history = monitor.history()
    assert history[-1].step == 70 and history[-1].alerts[0].stop_training
    assert "improved by less than min_delta 0.001 over 2 checkpoints" in received[0].text
