"""Multiple-choice tasks: rows (lm-eval / MMLU / ARC layouts) with file/line/field errors, metrics of the
teacher-forced pass against a naive per-choice reference on a real tiny HF model, the forecast wiring
(every save an exact anchor, floor 1/K) and the synthetic ``mc_add`` family."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from evalcast import Budget, Monitor, MonitorConfig
from evalcast.data import ExpertRecord, ExpertSet, ExpertSetError, load_records
from evalcast.data.table import CHOICE, EXPERT
from evalcast.forecast import ForecastConfig
from evalcast.monitor.anchors import AnchorConfig
from evalcast.monitor.forecast_step import build_inputs
from evalcast.proxy.aggregate import metric_name
from evalcast.proxy.choices import ACCURACIES, CHOICE_PROXIES
from evalcast.tasks import CHOICE_TASKS, get_task, training_text
from evalcast.toy import arithmetic_records, tiny_gpt2

MMLU_ROWS = [{"question": "2+2=", "choices": ["3", "4", "5", "22"], "answer": 1},
             {"question": "9+1=", "choices": ["10", "91"], "answer": 0}]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ------------------------------------------------------------------ rows
def test_mmlu_layout_loads_from_jsonl_parquet_and_datasets(tmp_path: Path) -> None:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = {"prompt": "question"}
    from_jsonl = load_records(_write_jsonl(tmp_path / "mmlu.jsonl", MMLU_ROWS), fields=fields)
    pq.write_table(pa.Table.from_pylist(MMLU_ROWS), tmp_path / "mmlu.parquet")
    from_parquet = load_records(tmp_path / "mmlu.parquet", fields=fields)
    from_dataset = load_records(datasets.Dataset.from_list(MMLU_ROWS), fields=fields, task="mmlu")
    for records in (from_jsonl, from_parquet, from_dataset):
        assert [(r.prompt, r.choices, r.gold, r.solution) for r in records] == [
            ("2+2=", ("3", "4", "5", "22"), 1, "4"), ("9+1=", ("10", "91"), 0, "10")]
    # written back and read again, a row keeps its choices and gold
    again = load_records(_write_jsonl(tmp_path / "again.jsonl", [r.to_json() for r in from_jsonl]))
    assert [(r.choices, r.gold) for r in again] == [(r.choices, r.gold) for r in from_jsonl]


def test_arc_layout_and_explicit_gold_field(tmp_path: Path) -> None:
    arc = {"question": "q", "choices": {"text": ["a", "b", "c"], "label": ["A", "B", "C"]}, "answerKey": "C"}
    path = _write_jsonl(tmp_path / "arc.jsonl", [arc, {**arc, "answerKey": "1", "choices": {
        "text": ["x", "y"], "label": ["1", "2"]}}])
    records = load_records(path, fields={"prompt": "question", "gold": "answerKey"})
    assert [(r.choices, r.gold) for r in records] == [(("a", "b", "c"), 2), (("x", "y"), 0)]
    assert ExpertRecord.multiple_choice("q", ["a", "b"], 1).solution == "b"
    with pytest.raises(ValueError, match="not the correct choice"):
        ExpertRecord(prompt="q", solution="a", choices=("a", "b"), gold=1)


@pytest.mark.parametrize(("row", "field", "message"), [
    ({"question": "q", "choices": ["only"], "answer": 0}, "choices", "at least 2 choices"),
    ({"question": "q", "choices": ["a", "b"], "answer": 2}, "answer", "out of range for 2 choices"),
    ({"question": "q", "choices": ["a", "b"], "answer": -1}, "answer", "out of range"),
    ({"question": "q", "choices": ["a", "  "], "answer": 0}, "choices", "choice 1 is empty"),
    ({"question": "q", "choices": ["a", 3], "answer": 0}, "choices", "choice 1 must be a string"),
    ({"question": "q", "choices": "a b", "answer": 0}, "choices", "must be a list"),
    ({"question": "q", "choices": ["a", "b"]}, "gold", "missing"),
    ({"question": "q", "choices": ["a", "b"], "answer": "maybe"}, "answer", "not an index"),
    ({"question": "q", "solution": "s", "gold": 1}, "gold", "given without choices"),
    ({"question": "q", "choices": ["a", "b"], "answer": 0, "negatives": ["c"]}, "negatives", "takes no negatives"),
])
def test_bad_rows_name_file_line_and_field(tmp_path: Path, row: dict, field: str, message: str) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", [MMLU_ROWS[0], row])
    with pytest.raises(ExpertSetError, match=message) as info:
        load_records(path, fields={"prompt": "question"})
    assert (info.value.source, info.value.line, info.value.field_name) == (str(path), 2, field)
    kept = load_records(path, fields={"prompt": "question"}, on_invalid="skip")
    assert len(kept) == 1


# ------------------------------------------------------------------ metrics against a naive reference
def _naive(model: torch.nn.Module, tok, record: ExpertRecord, *, eos: bool = False) -> dict[str, np.ndarray]:
    """Per choice: one plain ``model(...)`` call on prompt + " " + choice, log-probabilities (softmax over the
    tokenizer's vocabulary: padding rows of the output layer are not tokens) summed over the continuation's
    tokens (``eos``: with the EOS token scored too, the mistake the companion test plants)."""
    context = tok(record.prompt)["input_ids"]
    loglik, tokens = [], []
    for choice in record.choices:
        full = tok(record.prompt + " " + choice)["input_ids"] + ([tok.eos_token_id] if eos else [])
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([full])).logits[0, :, :len(tok)]
            logp = torch.log_softmax(logits.double(), dim=-1)
        loglik.append(sum(float(logp[t - 1, full[t]]) for t in range(len(context), len(full))))
        tokens.append(len(full) - len(context))
    return {"loglik": np.array(loglik), "tokens": np.array(tokens, float),
            "chars": np.array([len(c) for c in record.choices], float),
            "bytes": np.array([len(c.encode()) for c in record.choices], float)}


def _naive_metrics(per_question: list[dict[str, np.ndarray]], golds: list[int]) -> dict[str, float]:
    """Group means, written out per question as plainly as possible."""
    rows: dict[str, list[float]] = {}
    for q, gold in zip(per_question, golds):
        ll = q["loglik"]
        rows.setdefault("acc", []).append(float(int(np.argmax(ll)) == gold))
        rows.setdefault("acc_norm", []).append(float(int(np.argmax(ll / q["chars"])) == gold))
        rows.setdefault("acc_bytes", []).append(float(int(np.argmax(ll / q["bytes"])) == gold))
        for suffix, n in (("", np.ones_like(ll)), ("_per_token", q["tokens"]), ("_per_byte", q["bytes"])):
            s = ll / n
            rows.setdefault(f"mc_prob{suffix}", []).append(math.exp(s[gold]) / sum(math.exp(v) for v in s))
            rows.setdefault(f"mc_margin{suffix}", []).append(s[gold] - max(v for k, v in enumerate(s) if k != gold))
        rows.setdefault("mc_chance", []).append(1 / len(ll))
    return {name: float(np.mean(values)) for name, values in rows.items()}


def _mismatches(ours: dict[str, float], naive: dict[str, float], group: str) -> list[str]:
    # log-likelihoods of a few tokens (|ℓ| ≲ 20 nats) from fp32 logits: agreement to ~1e-5 nats, so 1e-4
    return [f"{name}: {ours[metric_name(group, name)]} vs {value}" for name, value in naive.items()
            if not math.isclose(ours[metric_name(group, name)], value, rel_tol=1e-4, abs_tol=1e-4)]


@pytest.fixture(scope="module")
def mc_setup(tmp_path_factory: pytest.TempPathFactory):
    from evalcast.toy import char_tokenizer

    tok = char_tokenizer()
    choice_rows = get_task("mc_add").sample(15, seed=0)
    records = choice_rows + arithmetic_records(6)  # open-ended rows ride in the same pass
    experts = ExpertSet(records, tok, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    # padded vocabulary (rows past the tokenizer are never a choice's token) and small batches
    model = tiny_gpt2(tok, n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=len(tok) + 7, seed=3)
    model.eval()
    monitor = Monitor(experts, run_dir=tmp_path_factory.mktemp("run"), forecast=None,
                      config=MonitorConfig(max_tokens=256, pad_multiple=8))
    evaluation = monitor.step(model, step=1)
    return tok, model, experts, choice_rows, evaluation


def test_table_holds_every_choice_without_eos(mc_setup) -> None:
    tok, _, experts, choice_rows, _ = mc_setup
    table = experts.table
    assert experts.n_choice_rows == len(choice_rows)
    for r, record in enumerate(experts.records[:len(choice_rows)]):
        seqs = np.flatnonzero(table.record_index == r)
        assert sorted(table.choice[seqs].tolist()) == list(range(len(record.choices)))
        for i in seqs:
            k = int(table.choice[i])
            assert table.kind[i] == (EXPERT if k == record.gold else CHOICE)
            assert tok.decode(table.sequence(i)[table.solution_start[i]:]) == " " + record.choices[k]


def test_metrics_equal_a_naive_per_choice_reference(mc_setup) -> None:
    tok, model, _, choice_rows, evaluation = mc_setup
    naive = [_naive(model, tok, r) for r in choice_rows]
    expected = _naive_metrics(naive, [r.gold for r in choice_rows])
    assert _mismatches(evaluation.metrics, expected, "mc_add") == []
    assert _mismatches(evaluation.metrics, expected, "domain/arith/mc_add") == []
    assert metric_name("add", "acc") not in evaluation.metrics  # open-ended tasks get no choice metrics
    # question by question: the log-likelihood of every choice, and the verdicts
    examples = evaluation.examples
    order = [list(examples["choice_id"]).index(r.id) for r in choice_rows]
    np.testing.assert_allclose(examples["choice_loglik"][order], np.stack([q["loglik"] for q in naive]),
                               rtol=1e-5, atol=1e-4)
    assert list(examples["choice_accuracies"]) == list(ACCURACIES)
    assert set(CHOICE_PROXIES) <= {name.split("/")[-1] for name in evaluation.metrics}


def test_companion_scoring_eos_is_caught(mc_setup) -> None:
    """The reference with the EOS token scored (as open-ended rows are) must disagree: the check has teeth."""
    tok, model, _, choice_rows, evaluation = mc_setup
    wrong = _naive_metrics([_naive(model, tok, r, eos=True) for r in choice_rows], [r.gold for r in choice_rows])
    assert any(m.startswith("mc_prob:") for m in _mismatches(evaluation.metrics, wrong, "mc_add"))


# ------------------------------------------------------------------ forecasts and the monitor
def test_every_save_is_an_exact_anchor_with_floor_one_over_k(tmp_path: Path, tok) -> None:
    records = [*get_task("mc_add").sample(8, seed=1),
               ExpertRecord.multiple_choice("1+1=", ["2", "3"], 0, task="mc_add", id="two-way")]
    experts = ExpertSet(records, tok, cache_dir=tmp_path / "cache", progress=False)
    model = tiny_gpt2(tok, n_layer=1, n_embd=16, n_head=2, n_positions=64)
    config = ForecastConfig(choice_accuracy="acc_norm")
    monitor = Monitor(experts, run_dir=tmp_path / "run", budget=Budget(max_steps=100), forecast=config)
    for step in (10, 20, 30):
        monitor.step(model, step=step)
    assert monitor.forecast is not None
    chance = (8 * 0.25 + 0.5) / 9
    assert monitor.forecast.choice["mc_add"].chance == pytest.approx(chance)
    history = monitor.history()
    inputs, _ = build_inputs(history, ["all", "mc_add"], Budget(max_steps=100), {}, {}, config,
                             monitor.forecast.choice)
    for task in inputs:
        assert task.chance == pytest.approx(chance)
        assert [a.accuracy for a in task.anchors] == [r.metrics[metric_name(task.name, "acc_norm")] for r in history]
        assert all(a.n_questions == 9 for a in task.anchors)
    given = ForecastConfig(chance={"mc_add": 0.1})
    inputs, _ = build_inputs(history, ["mc_add"], Budget(max_steps=100), {}, {}, given, monitor.forecast.choice)
    assert inputs[0].chance == 0.1
    with pytest.raises(ValueError, match="choice_accuracy"):
        ForecastConfig(choice_accuracy="accuracy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="multiple choice"):
        Monitor(experts, run_dir=tmp_path / "run2", anchors=AnchorConfig())


# ------------------------------------------------------------------ the synthetic family
def test_mc_add_family() -> None:
    family = CHOICE_TASKS["mc_add"]
    records = family.sample(40, seed=2, negatives=True)
    assert records == family.sample(40, seed=2, negatives=True)
    for r in records:
        a, b = map(int, r.prompt.rstrip("=").split("+"))
        assert r.is_choice and len(r.choices) == 4 == len(set(r.choices))
        assert r.choices[r.gold] == str(a + b) == r.answer and not r.negatives
        assert training_text(r) == f"{r.prompt} {a + b}"
    assert len({r.gold for r in records}) == 4  # the correct choice moves
