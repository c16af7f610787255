"""The monitor core: isolation guarantees, aggregation by sums, skips on errors, the run store."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from evalcast import ExpertRecord, ExpertSet, Monitor, MonitorConfig
from evalcast.monitor import Decision, Evaluation, EvaluationSkipped, TrainingContext
from evalcast.monitor.local import LocalPlan, run_local
from evalcast.monitor.merging import checkpoint_metrics, merge
from evalcast.proxy import metric_name
from evalcast.runs import Record, RunStore
from evalcast.stats import ModelMismatchError, check_compatible
from evalcast.stats.isolation import isolated
from evalcast.toy import TextDataset, char_tokenizer, tiny_gpt2
from evalcast.trackers import Tracker
from tests.conftest import training_texts
from tests.guarantee import (
    MUTATIONS,
    TrainingTrace,
    assert_invisible,
    break_isolation,
    differences,
    draw_during_evaluation,
    trace,
)
from tests.test_token_stats import naive_statistics


def test_isolation_restores_modes_rng_and_leaves_gradients(model):
    model.train()
    model.transformer.h[0].eval()  # a frozen block stays in eval mode
    model.transformer.wte.weight.requires_grad_(False)
    model.activation_checkpointing_enable()
    loss = model(torch.tensor([[5, 6, 7, 8]]), labels=torch.tensor([[5, 6, 7, 8]])).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    modes = {n: m.training for n, m in model.named_modules()}
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with isolated(model):
        assert not model.training and not torch.is_grad_enabled()
        random.random(), np.random.rand(), torch.rand(3)  # evaluation code drawing random numbers
        model.generate(torch.tensor([[5, 6]]), do_sample=True, max_new_tokens=3, pad_token_id=0)
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert model.is_activation_checkpointing and model.config.use_cache is True
    assert not model.transformer.wte.weight.requires_grad
    for name, param in model.named_parameters():
        assert (name in grads) == (param.grad is not None)
        if param.grad is not None:
            assert torch.equal(param.grad, grads[name])


def plain_loop(tok, monitor: Monitor | None, steps: int = 9) -> TrainingTrace:
    """A raw training loop: dropout on (GPT-2's 0.1), batches shuffled from the global torch RNG, an
    evaluation every 3 optimizer steps (between steps, and after the last); evaluations draw random numbers."""
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    model = tiny_gpt2(tok, n_layer=2, n_embd=32, n_head=2, n_positions=64, seed=0)
    assert model.config.resid_pdrop > 0
    draw_during_evaluation(model)
    data = TextDataset(tok, training_texts(32), length=48)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses, step = [], 0
    model.train()
    while step < steps:
        for batch in DataLoader(data, batch_size=8, shuffle=True, collate_fn=data.collate):
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            step += 1
            if monitor is not None:
                monitor.step(model, step=step, every=3)
            if step == steps:
                break
    return trace(model, losses)


@pytest.fixture(scope="module")
def plain_trace(tok):
    return plain_loop(tok, None)


def test_a_plain_loop_trains_bit_identically_with_the_monitor(tok, experts, tmp_path, plain_trace):
    monitor = Monitor(experts, run_dir=tmp_path / "run")
    assert_invisible(plain_trace, plain_loop(tok, monitor), min_losses=9)
    assert [(r.step, r.status) for r in monitor.history()] == [(3, "ok"), (6, "ok"), (9, "ok")]


@pytest.mark.mutation
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_the_plain_loop_check_catches_broken_isolation(tok, experts, tmp_path, plain_trace, monkeypatch, mutation):
    break_isolation(monkeypatch, mutation)
    monitor = Monitor(experts, run_dir=tmp_path / "run")
    assert differences(plain_trace, plain_loop(tok, monitor))
    assert [r.step for r in monitor.history()] == [3, 6, 9]


def naive_group_means(model, experts) -> dict[str, float]:
    """Token-micro averages per group computed from the naive per-token reference."""
    stats = naive_statistics(model, experts)
    table = experts.table
    owner = np.repeat(np.arange(table.n_seq), table.scored_lengths)
    out = {}
    for group in ("all", "add", "sub", "domain/math", "domain/math/add"):
        rows = [i for i in range(table.n_seq) if table.kind[i] == 0 and
                (group == "all" or experts.records[table.record_index[i]].task == group.split("/")[-1]
                 or group == "domain/math")]
        mask = np.isin(owner, rows)
        out[metric_name(group, "nll")] = stats[mask, 0].mean()
        out[metric_name(group, "top5")] = stats[mask, 4].mean()
        per_seq = [stats[owner == i, 0].mean() for i in rows]
        out[metric_name(group, "nll", "traj")] = float(np.mean(per_seq))
        nll_sum = sum(stats[owner == i, 0].sum() for i in rows)
        out[metric_name(group, "bpb")] = nll_sum / (table.n_bytes[rows].sum() * np.log(2))
    return out


def test_group_metrics_equal_naive_averages_and_shards_merge_exactly(model, experts, tmp_path):
    model.eval()
    metrics = Monitor(experts, run_dir=tmp_path / "one").evaluate(model, 1).metrics
    for name, value in naive_group_means(model, experts).items():
        assert metrics[name] == pytest.approx(value, rel=1e-5), name
    # Shards scored separately (as ranks do) and merged give the same sums: per-rank means are never averaged.
    monitor = Monitor(experts, run_dir=tmp_path / "two")
    head = check_compatible(model, vocab_size=experts.vocab_size, longest=int(experts.table.lengths.max()))
    plan = LocalPlan(question_rows=None, capture_tokens=False, anchor=None)
    with isolated(model):
        shards = [run_local(model, experts, head, MonitorConfig(), plan, TrainingContext(step=1), rank, 3)
                  for rank in range(3)]
    merged = merge(shards, experts.table.n_seq)
    assert sum(len(s.rows) for s in shards) == experts.table.n_seq
    expected = {k: v for k, v in metrics.items() if "cost" not in k and "forecast" not in k}
    assert checkpoint_metrics(experts, monitor.groups, MonitorConfig().stats.names, merged) == pytest.approx(
        expected, nan_ok=True)


def test_pairs_match_a_naive_margin(model, experts, tmp_path):
    metrics = Monitor(experts, run_dir=tmp_path).evaluate(model, 1).metrics
    stats = naive_statistics(model.eval(), experts)
    table = experts.table
    owner = np.repeat(np.arange(table.n_seq), table.scored_lengths)
    score = [-stats[owner == i, 0].sum() / table.n_bytes[i] for i in range(table.n_seq)]
    margins = [score[i] - score[i + 1] for i in range(0, table.n_seq, 2)]  # expert then its negative
    assert metrics[metric_name("all", "pair_margin")] == pytest.approx(np.mean(margins), abs=1e-6)
    assert metrics[metric_name("all", "pair_accuracy")] == pytest.approx(np.mean(np.array(margins) > 0))
    assert metrics[metric_name("all", "pair_accuracy.wrong_answer")] == metrics[metric_name("all", "pair_accuracy")]


def test_errors_skip_the_save_with_a_reason_and_strict_reraises(model, experts, tmp_path, caplog):
    def broken(module, args):
        raise RuntimeError("boom in a hook")

    handle = model.transformer.h[1].register_forward_pre_hook(broken)
    monitor = Monitor(experts, run_dir=tmp_path)
    with caplog.at_level(logging.ERROR, logger="evalcast"):
        evaluation = monitor.evaluate(model, 5)
    assert not evaluation.ok and "RuntimeError: boom in a hook" in evaluation.decision.reason
    assert "Traceback" in caplog.text and "boom in a hook" in caplog.text
    assert (monitor.history()[-1].step, monitor.history()[-1].status) == (5, "skipped")
    strict = Monitor(experts, run_dir=tmp_path / "strict", config=MonitorConfig(strict=True))
    with pytest.raises(RuntimeError, match="boom in a hook"):
        strict.evaluate(model, 5)
    handle.remove()
    assert monitor.evaluate(model, 6).ok


def test_tokenizer_and_model_mismatches_are_explained(experts, tmp_path):
    small = tiny_gpt2(char_tokenizer("0123456789"), n_embd=16)
    evaluation = Monitor(experts, run_dir=tmp_path / "a").evaluate(small, 1)
    assert not evaluation.ok and "different tokenizer" in evaluation.decision.reason
    with pytest.raises(ModelMismatchError, match="different tokenizer"):
        Monitor(experts, run_dir=tmp_path / "b", config=MonitorConfig(strict=True)).evaluate(small, 1)
    short = tiny_gpt2(experts.tokenizer, n_embd=16, n_positions=8)
    assert "max_length=8" in Monitor(experts, run_dir=tmp_path / "c").evaluate(short, 1).decision.reason
    base = short.transformer
    assert "no output layer" in Monitor(experts, run_dir=tmp_path / "d").evaluate(base, 1).decision.reason


def test_run_store_appends_replaces_and_rewinds(tmp_path):
    store = RunStore(tmp_path)
    for step in (10, 20, 30):
        store.append(Record(step=step, metrics={"value": float(step)}))
    store.append(Record(step=20, metrics={"value": -1.0}))
    assert [(r.step, r.metrics["value"]) for r in store.history()] == [(10, 10.0), (20, -1.0), (30, 30.0)]
    store.rewind(20)
    assert [r.step for r in store.history()] == [10, 20]
    store.append(Record(step=40))
    with open(tmp_path / "history.jsonl", "a") as fh:
        fh.write('{"step": 50, "val')  # torn write from a crash
    assert [r.step for r in RunStore(tmp_path).history()] == [10, 20, 40]


def test_monitor_reopens_its_run_and_refuses_another_expert_set(model, experts, tmp_path, tok, cache_dir):
    Monitor(experts, run_dir=tmp_path).evaluate(model, 1)
    again = Monitor(experts, run_dir=tmp_path)
    again.evaluate(model, 2)
    assert [r.step for r in again.history()] == [1, 2]
    assert again.store.load_arrays(2, "examples")["stats"].shape == (experts.n_expert, len(StatNames()))
    other = ExpertSet([ExpertRecord(prompt="a", solution="b")], tok, cache_dir=cache_dir, progress=False)
    with pytest.raises(ValueError, match="another expert set"):
        Monitor(other, run_dir=tmp_path)


def test_same_step_twice_is_evaluated_once(model, experts, tmp_path):
    monitor = Monitor(experts, run_dir=tmp_path)
    first = monitor.evaluate(model, 3)
    assert monitor.evaluate(model, 3) is first
    assert len(monitor.history()) == 1


def test_strict_skip_without_exception_raises_evaluation_skipped(model, experts, tmp_path):
    monitor = Monitor(experts, run_dir=tmp_path, config=MonitorConfig(strict=True))
    monitor.rank_zero.conclude = lambda *a: Evaluation(Decision(ok=False, reason="rank 1: no result"))  # rank 0 fails
    with pytest.raises(EvaluationSkipped, match="rank 1: no result"):
        monitor.evaluate(model, 1)


def StatNames():
    return MonitorConfig().stats.names


def test_a_plain_loop_that_gives_its_budget_gets_forecasts(model, experts, tmp_path):
    """``monitor.step(..., max_steps=N)`` sets the forecast horizon; without it the forecasts say why not."""
    blind = Monitor(experts, run_dir=tmp_path / "blind").step(model, step=10, every=10)
    assert blind is not None and blind.record.forecasts["all"].reason == "no_budget"
    monitor = Monitor(experts, run_dir=tmp_path / "run")
    evaluation = monitor.step(model, step=10, every=10, max_steps=100, tokens_seen=1000)
    assert monitor.budget.max_steps == 100
    assert evaluation is not None and evaluation.record.forecasts["all"].reason not in ("no_budget", "")
    with pytest.raises(ValueError, match="every=0"):
        monitor.step(model, step=10, every=0)


class Recording(Tracker):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def log(self, metrics, *, step: int) -> None:
        self.steps.append(step)


class Broken(Tracker):
    def log(self, metrics, *, step: int) -> None:
        raise ConnectionError("tracker server down")


def test_a_failing_tracker_does_not_stop_the_others_and_strict_reraises(model, experts, tmp_path, caplog):
    first, last = Recording(), Recording()
    monitor = Monitor(experts, run_dir=tmp_path / "a", trackers=[first, Broken(), last], forecast=None)
    with caplog.at_level(logging.ERROR, logger="evalcast"):
        assert monitor.evaluate(model, 1).ok
    assert first.steps == last.steps == [1] and [r.step for r in monitor.history()] == [1]
    assert "tracker server down" in caplog.text and "Traceback" in caplog.text
    strict = Monitor(experts, run_dir=tmp_path / "b", trackers=[Broken()], config=MonitorConfig(strict=True),
                     forecast=None)
    with pytest.raises(ConnectionError, match="tracker server down"):
        strict.evaluate(model, 1)
