"""A separate evaluation set: anchors, the probe's labels and pass@1 come from the user's evaluation
questions (prompt + answer, no solution), while the proxies still come from the expert solutions."""

from __future__ import annotations

import json
import math

import pytest
import torch

from evalcast.data import EVAL, ExpertRecord, ExpertSet, ExpertSetError, PromptConfig, TokenizeConfig
from evalcast.generate import DecodeConfig, NumericScorer
from evalcast.monitor import AnchorConfig, Monitor
from evalcast.toy import tiny_gpt2

FMT = PromptConfig(separator="")
CONFIG = TokenizeConfig(prompt_format=FMT)
EXPERTS = [ExpertRecord(prompt=f"count: {i}", solution=f"{i} {i} {i} so 333", answer="333", id=f"c{i}",
                        task="count") for i in range(1, 7)]


def _eval_file(tmp_path):
    rows = [{"id": "t1", "task": "count", "prompt": "count: 1 2 3", "answer": "333"},   # the model says 333...
            {"id": "t2", "task": "count", "prompt": "count: 1 2 3", "answer": "334"}]   # ...so this one is wrong
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _monitor(experts, tmp_path, name):
    anchors = AnchorConfig(every=1, decode=DecodeConfig(max_new_tokens=12, prompt_format=FMT, progress=False),
                           scorer=NumericScorer(patterns=(r"(\d{3})",)))
    return Monitor(experts, run_dir=tmp_path / name, anchors=anchors, forecast=None)


def test_anchors_run_on_the_evaluation_questions_and_proxies_on_the_experts(tok, tmp_path) -> None:
    with torch.random.fork_rng():
        model = tiny_gpt2(tok, n_layer=2, seed=3)  # greedy: 'count: 1 2 3' -> '333333333333'
    with_eval = ExpertSet(EXPERTS, tok, config=CONFIG, cache_dir=tmp_path / "c", progress=False,
                          evaluation=_eval_file(tmp_path))
    plain = ExpertSet(EXPERTS, tok, config=CONFIG, cache_dir=tmp_path / "c", progress=False)
    assert with_eval.n_evaluation == 2 and int((with_eval.table.kind == EVAL).sum()) == 2
    assert with_eval.fingerprint != plain.fingerprint
    monitor = _monitor(with_eval, tmp_path, "eval")
    monitor.step(model, step=1)
    record = monitor.history()[0]
    assert record.anchor is not None and dict(record.anchor.per_question) == {"eval:t1": 1.0, "eval:t2": 0.0}
    assert record.value("count", "pass@1_anchor") == pytest.approx(0.5)
    baseline = _monitor(plain, tmp_path, "plain")
    baseline.step(model, step=1)
    expert_record = baseline.history()[0]
    assert set(expert_record.anchor.per_question) == {f"c{i}" for i in range(1, 7)}
    for metric in ("nll", "top1"):  # the proxies do not see the evaluation questions
        a, b = record.value("all", metric), expert_record.value("all", metric)
        assert math.isfinite(a) and a == pytest.approx(b, rel=1e-6)


def test_evaluation_questions_are_validated(tok, tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "t1", "task": "count", "prompt": "count: 1"}) + "\n")
    with pytest.raises(ExpertSetError, match=r"bad.jsonl:1: field 'answer': an evaluation question needs an answer"):
        ExpertSet(EXPERTS, tok, config=CONFIG, cache_dir=tmp_path / "c", progress=False, evaluation=bad)
    other = [ExpertRecord(prompt="spell it", solution="abc", answer="abc", id="s", task="spell")]
    with pytest.raises(ExpertSetError, match=r"task\(s\) \['spell'\] have no expert rows"):
        ExpertSet(EXPERTS, tok, config=CONFIG, cache_dir=tmp_path / "c", progress=False, evaluation=other)
