"""Batched generation, scorers, pass@k and evaluate_generative on real tiny models (GPT-2 and Llama)."""

from __future__ import annotations

import json
import random
from fractions import Fraction
from itertools import combinations
from math import comb
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from tokenizers.processors import TemplateProcessing

from evalcast.data.files import load_records
from evalcast.data.formatting import PromptConfig
from evalcast.data.records import ExpertRecord
from evalcast.generate import (
    DecodeConfig,
    ExactMatchScorer,
    NumericScorer,
    QuestionResult,
    encode_prompt,
    evaluate_generative,
    generate_completions,
    pass_at_k,
    summarize_tasks,
    truncate_at_stop,
)
from evalcast.toy import char_tokenizer, tiny_gpt2, tiny_llama

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PROMPTS = ["a", "what is 12+7?", "1+1=2. 3+4=", "the quick brown fox", "zz"]
FMT = PromptConfig(separator="")


def _cfg(**kwargs) -> DecodeConfig:
    return DecodeConfig(**{"max_new_tokens": 10, "prompt_format": FMT, "progress": False, **kwargs})


@pytest.fixture(params=["gpt2", "llama"])
def lm(request, tok):
    """A fresh random tiny GPT-2 or Llama."""
    build = tiny_gpt2 if request.param == "gpt2" else tiny_llama
    with torch.random.fork_rng():
        return build(tok, n_layer=2, seed=3)


@pytest.mark.parametrize("kwargs", [
    {"n": 0}, {"n": 2}, {"greedy": False, "temperature": 0.0}, {"greedy": False, "top_p": 0.0},
    {"stop": ("",)}, {"greedy": False, "n": 2, "ks": (3,)}, {"batch_size": 0}, {"max_new_tokens": 0}])
def test_decode_config_rejects_bad_values(kwargs) -> None:
    with pytest.raises(ValueError, match=r"DecodeConfig|greedy"):
        DecodeConfig(**kwargs)


def test_greedy_is_deterministic_and_left_padding_changes_nothing(lm, tok) -> None:
    batched = generate_completions(lm, tok, PROMPTS, _cfg(batch_size=3))
    one_by_one = generate_completions(lm, tok, PROMPTS, _cfg(batch_size=1))
    assert batched == one_by_one
    assert generate_completions(lm, tok, PROMPTS, _cfg(batch_size=3)) == batched
    assert all(len(g.texts) == 1 and 1 <= g.tokens[0] <= 10 for g in batched)


def test_tokenizer_and_model_configs_are_left_untouched(lm, tok, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tok, "padding_side", "right")
    config, generation = lm.config.to_dict(), lm.generation_config.to_dict()
    generate_completions(lm, tok, PROMPTS, _cfg(batch_size=4, greedy=False, n=2, temperature=0.7, top_p=0.9))
    assert tok.padding_side == "right"
    assert lm.config.to_dict() == config and lm.generation_config.to_dict() == generation


def test_train_eval_modes_are_restored_and_generation_runs_in_eval(tok) -> None:
    with torch.random.fork_rng():
        model = tiny_gpt2(tok, n_layer=2, seed=3, resid_pdrop=0.5, embd_pdrop=0.5)
    model.train()
    model.transformer.h[0].eval()  # mixed modes must come back exactly
    before = [m.training for m in model.modules()]
    in_train_mode = generate_completions(model, tok, PROMPTS, _cfg())
    assert [m.training for m in model.modules()] == before
    model.eval()
    assert generate_completions(model, tok, PROMPTS, _cfg()) == in_train_mode  # dropout was off
    assert not any(m.training for m in model.modules())


def test_sampling_is_seeded_and_leaves_the_callers_rng_streams_alone(lm, tok) -> None:
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    torch_state, py_state, np_state = torch.get_rng_state(), random.getstate(), np.random.get_state()
    config = _cfg(greedy=False, n=3, temperature=1.0, seed=1, batch_size=4)
    first = generate_completions(lm, tok, PROMPTS, config)
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == py_state
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), np_state))
    assert generate_completions(lm, tok, PROMPTS, config) == first
    other_seed = generate_completions(lm, tok, PROMPTS, _cfg(greedy=False, n=3, seed=2, batch_size=4))
    assert other_seed != first
    assert all(len(g.texts) == 3 for g in first)


def test_stop_string_cuts_the_completion_and_ends_generation(lm, tok) -> None:
    full = generate_completions(lm, tok, PROMPTS, _cfg())
    # a character that first appears at position k >= 1 of some completion: the stop must cut there
    found = next((i, g.texts[0], k) for i, g in enumerate(full) for k in range(1, len(g.texts[0]))
                 if g.texts[0][k] not in g.texts[0][:k])
    i, text, k = found
    stopped = generate_completions(lm, tok, [PROMPTS[i]], _cfg(stop=(text[k], "never-seen")))[0]
    assert stopped.texts == (text[:k],)
    assert stopped.tokens[0] < full[i].tokens[0]


def test_truncate_at_stop_takes_the_earliest_stop() -> None:
    assert truncate_at_stop("abc. def\n\nx", ["\n\n", "."]) == "abc"
    assert truncate_at_stop("abc", ["x"]) == "abc"
    assert truncate_at_stop(".abc", ["."]) == ""


def test_eos_ends_generation_and_is_not_in_the_text(tok) -> None:
    with torch.random.fork_rng():
        model = tiny_llama(tok, n_layer=2, seed=3)
    free = generate_completions(model, tok, PROMPTS, _cfg())
    i, text = next((i, g.texts[0]) for i, g in enumerate(free) if g.texts[0] and PROMPTS[i][-1] != g.texts[0][0])
    trigger = tok.convert_tokens_to_ids(text[0])

    def force_eos(module, args, kwargs, output):  # after `trigger` the model can only say EOS
        hit = kwargs["input_ids"][:, -1] == trigger
        output.logits[hit, -1, :] = -1e4
        output.logits[hit, -1, tok.eos_token_id] = 1e4

    handle = model.register_forward_hook(force_eos, with_kwargs=True)
    try:
        got = generate_completions(model, tok, [PROMPTS[i]], _cfg())[0]
    finally:
        handle.remove()
    assert got.texts == (text[0],) and got.tokens == (2,)


def test_bf16_model_generates_deterministically(tok) -> None:
    with torch.random.fork_rng():
        model = tiny_llama(tok, n_layer=2, seed=3).to(torch.bfloat16)
    first = generate_completions(model, tok, PROMPTS, _cfg(batch_size=2))
    assert generate_completions(model, tok, PROMPTS, _cfg(batch_size=2)) == first
    assert all(isinstance(g.texts[0], str) and g.tokens[0] >= 1 for g in first)


def test_special_tokens_follow_the_tokenizer_unless_a_chat_template_renders_the_prompt() -> None:
    tokenizer = char_tokenizer()
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="<eos> $A", special_tokens=[("<eos>", tokenizer.eos_token_id)])
    plain = tokenizer("ab", add_special_tokens=False)["input_ids"]
    assert encode_prompt(tokenizer, "ab", PromptConfig()) == [tokenizer.eos_token_id, *plain]
    assert encode_prompt(tokenizer, "ab", PromptConfig(chat_template=True)) == plain


def test_synced_gpus_is_passed_through_to_generate(lm, tok, tmp_path: Path) -> None:
    if dist.is_initialized():
        pytest.skip("a process group already exists in this process")
    expected = generate_completions(lm, tok, PROMPTS, _cfg(batch_size=2))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        synced = generate_completions(lm, tok, PROMPTS, _cfg(batch_size=2, synced_gpus=True))
    finally:
        dist.destroy_process_group()
    assert synced == expected


def test_evaluate_generative_routes_scorers_and_counts_outcomes(tok) -> None:
    with torch.random.fork_rng():
        model = tiny_gpt2(tok, n_layer=2, seed=3)
    model.train()
    records = [
        ExpertRecord(prompt="what is 2+2?", solution="2+2=4\n#### 4", id="m1", task="math"),
        ExpertRecord(prompt="what is 3+3?", solution="3+3=6\n#### 6", id="m2", task="math"),
        ExpertRecord(prompt="def add(a, b):\n", solution="    return a + b\n", id="c1", task="code",
                     meta={"test": "def check(candidate):\n    assert candidate(1, 2) == 3\n", "entry_point": "add"})]
    result = evaluate_generative(model, tok, records, config=_cfg(max_new_tokens=6))
    assert model.training
    assert [q.reasons for q in result.questions][:2] == [("no answer extracted",)] * 2
    code_reason = result.questions[2].reasons[0]
    assert code_reason not in {"no answer extracted", "wrong answer", "correct"}  # it went to the sandbox
    assert sum(result.outcomes.values()) == 3 and result.pass_at_1 == 0.0
    assert set(result.tasks) == {"math", "code"} and result.tasks["math"].pass_at_k == {1: 0.0}
    assert 3 <= result.tokens_generated <= 3 * 6
    assert result.wall_s >= result.generate_s > 0


def test_evaluate_generative_pass_at_k_and_json_round_trip(tok) -> None:
    with torch.random.fork_rng():
        model = tiny_llama(tok, n_layer=2, seed=3)
    greedy = generate_completions(model, tok, PROMPTS, _cfg(max_new_tokens=4))
    # half the references are what the model says, half are not
    records = [ExpertRecord(prompt=p, solution="x", answer=g.texts[0] if i % 2 == 0 else "~never~", id=f"q{i}",
                            task="echo") for i, (p, g) in enumerate(zip(PROMPTS, greedy))]
    whole = ExactMatchScorer(patterns=(), strip=False)
    result = evaluate_generative(model, tok, records, config=_cfg(max_new_tokens=4), scorer=whole)
    assert [q.correct_count for q in result.questions] == [1, 0, 1, 0, 1]
    assert result.pass_at_1 == pytest.approx(3 / 5)

    sampled = evaluate_generative(model, tok, records, scorer=whole,
                                  config=_cfg(max_new_tokens=4, greedy=False, n=4, ks=(1, 2, 4), temperature=0.8))
    summary = sampled.tasks["echo"]
    assert set(summary.pass_at_k) == {1, 2, 4} and summary.samples == 20
    assert summary.pass_at_k[1] <= summary.pass_at_k[2] <= summary.pass_at_k[4]
    assert summary.pass_at_k[1] == pytest.approx(np.mean([q.correct_count / 4 for q in sampled.questions]))
    payload = json.loads(json.dumps(sampled.to_json()))
    assert [QuestionResult.from_json(q) for q in payload["questions"]] == list(sampled.questions)
    assert payload["tasks"]["echo"]["pass@4"] == summary.pass_at_k[4]


def test_evaluate_generative_rejects_duplicate_ids_and_empty_input(tok) -> None:
    model = tiny_gpt2(tok, n_layer=1)
    record = ExpertRecord(prompt="a", solution="b", id="same")
    with pytest.raises(ValueError, match="duplicate record id 'same'"):
        evaluate_generative(model, tok, [record, record], config=_cfg())
    with pytest.raises(ValueError, match="at least one record"):
        evaluate_generative(model, tok, [], config=_cfg())


def test_pass_at_k_matches_brute_force_enumeration() -> None:
    for n in range(1, 8):
        for c in range(n + 1):
            outcomes = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(combinations(outcomes, k))
                assert pass_at_k(n, c, k) == pytest.approx(sum(map(any, subsets)) / len(subsets), abs=1e-12)


def test_pass_at_k_is_stable_for_large_n_and_exact_at_k1() -> None:
    for n, c, k in [(1000, 5, 500), (200, 1, 10), (500, 499, 2), (10_000, 3, 100)]:
        exact = 1 - Fraction(comb(n - c, k), comb(n, k))
        assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)
    assert pass_at_k(10, 3, 1) == 0.3
    for bad in [(4, 5, 1), (4, 2, 0), (4, 2, 5), (4, -1, 1)]:
        with pytest.raises(ValueError, match="pass@"):
            pass_at_k(*bad)


def test_summarize_tasks_only_reports_k_every_question_supports() -> None:
    def q(i: str, n: int, c: int) -> QuestionResult:
        return QuestionResult(i, "t", n, c, c / n, ("",) * n, ("x",) * n, (None,) * n, (False,) * n)

    summary = summarize_tasks([q("a", 4, 1), q("b", 2, 2)], ks=(1, 2, 4))["t"]
    assert summary.pass_at_k == {1: pytest.approx((0.25 + 1.0) / 2), 2: pytest.approx((0.5 + 1.0) / 2)}
    assert summary.outcomes == {"x": 6} and summary.samples == 6


def _rec(answer: str | None) -> ExpertRecord:
    return ExpertRecord(prompt="q", solution="s", answer=answer, id="r")


@pytest.mark.parametrize("completion, answer, reason, extracted", [
    ("The total is 18.\n#### 18", "18", "correct", "18"),
    ("#### 1,234.", "1234", "correct", "1,234."),
    ("####42", "42", "correct", "42"),
    ("#### 7\r\nmore text", "7", "correct", "7"),
    ("#### Yes", "yes", "correct", "Yes"),
    ("#### 5\nno wait\n#### 6", "6", "wrong answer", "5"),
    ("#### 1,23", "123", "wrong answer", "1,23"),
    ("The answer is 18", "18", "no answer extracted", None),
    ("####   \nthe end", "18", "no answer extracted", ""),
    ("", "18", "no answer extracted", None),
    ("#### 18", None, "no reference answer", None),
])
def test_exact_match_on_tricky_strings(completion, answer, reason, extracted) -> None:
    result = ExactMatchScorer().score(_rec(answer), completion)
    assert (result.correct, result.reason, result.extracted) == (reason == "correct", reason, extracted)


def test_exact_match_options() -> None:
    text = "answer is 5, no, answer is 6"
    assert ExactMatchScorer(patterns=(r"answer is (\d+)",), which="last").score(_rec("6"), text).correct
    assert not ExactMatchScorer(patterns=(r"answer is (\d+)",)).score(_rec("6"), text).correct
    assert ExactMatchScorer(which="last").score(_rec("6"), "#### 5\n#### 6").correct
    assert ExactMatchScorer(patterns=()).score(_rec("7"), " 7\n").correct
    assert not ExactMatchScorer(patterns=(), strip=False).score(_rec("7"), " 7").correct
    assert not ExactMatchScorer(ignore_case=False).score(_rec("yes"), "#### Yes").correct
    with pytest.raises(ValueError, match=r"invalid answer pattern '\(unclosed'"):
        ExactMatchScorer(patterns=("(unclosed",))


@pytest.mark.parametrize("completion, answer, reason", [
    ("#### 18.0", "18", "correct"),
    ("#### $1,234.50", "1234.5", "correct"),
    ("#### 3/4", "0.75", "correct"),
    ("#### \u22125", "-5", "correct"),
    ("#### 50%", "50", "correct"),
    ("#### 100.4", "100", "wrong answer"),
    ("#### abc", "5", "unparseable number"),
    ("#### 1/0", "5", "unparseable number"),
    ("#### 1e999", "5", "unparseable number"),
    ("#### nan", "5", "unparseable number"),
    ("no marker here", "5", "no answer extracted"),
    ("#### 5", "five", "reference not numeric"),
    ("#### 5", None, "no reference answer"),
])
def test_numeric_scorer_on_tricky_strings(completion, answer, reason) -> None:
    result = NumericScorer().score(_rec(answer), completion)
    assert (result.correct, result.reason) == (reason == "correct", reason)


def test_numeric_tolerances() -> None:
    assert NumericScorer(rel_tol=0.01).score(_rec("100"), "#### 100.4").correct
    assert NumericScorer(abs_tol=0.5).score(_rec("100"), "#### 100.4").correct
    with pytest.raises(ValueError, match="tolerances"):
        NumericScorer(abs_tol=-1)


def test_real_gsm8k_solutions_score_correct_and_a_changed_answer_does_not() -> None:
    records = load_records(DATA / "gsm8k" / "test.jsonl", fields={"prompt": "question", "solution": "answer"})[:40]
    for scorer in (ExactMatchScorer(), NumericScorer()):
        assert all(scorer.score(r, r.solution).correct for r in records)
        changed = [r.solution.rsplit("####", 1)[0] + f"#### {int(r.answer.replace(',', '')) + 1}" for r in records]
        assert not any(scorer.score(r, c).correct for r, c in zip(records, changed))


def test_generation_stops_at_the_context_limit(tok) -> None:
    model = tiny_gpt2(tok, n_layer=1, n_embd=16, n_positions=24, seed=0)
    [generation] = generate_completions(model, tok, ["1+1="], _cfg(max_new_tokens=100, batch_size=1))
    assert generation.tokens[0] <= 24 - len(tok("1+1=")["input_ids"])
    with pytest.raises(ValueError, match="no room to generate"):
        generate_completions(model, tok, ["x" * 30], _cfg(max_new_tokens=5, batch_size=1))
