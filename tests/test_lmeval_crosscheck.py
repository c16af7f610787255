"""evalcast's greedy exact-match pass@1 equals lm-evaluation-harness's exact_match, question by question.

A tiny char-level GPT-2 is trained briefly on "a+b=c." facts (some questions right, some wrong), saved
with save_pretrained, and evaluated by both: lm-eval loads it itself from the saved folder (custom task
YAML over a local JSONL, fully offline, in-process ``simple_evaluate`` with ``HFLM``), evalcast
reloads it with ``AutoModelForCausalLM``. Same prompt text (lm-eval's zero-shot context is
``doc_to_text``; evalcast renders with an empty separator), same stop (``until=["."]``), same
``max_gen_toks``, greedy.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from evalcast.data.formatting import PromptConfig
from evalcast.data.records import ExpertRecord
from evalcast.generate import DecodeConfig, ExactMatchScorer, evaluate_generative
from tests.lmeval_utils import lmeval_samples, offline, train_and_save

pytest.importorskip("lm_eval", reason="lm-eval is a dev dependency (pip install evalcast[lmeval])")

TASK = "evalcast_arith_crosscheck"
MAX_GEN_TOKS = 4


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, int]]]:
    """Train 300 plain-torch steps on 80 of the 100 one-digit sums; return the folder and the questions."""
    facts = [(a, b) for a in range(10) for b in range(10)]
    random.Random(0).shuffle(facts)
    train, held_out = facts[:80], facts[80:]
    folder = train_and_save(tmp_path_factory.mktemp("arith_model"),
                            lambda rng: [" ".join(f"{a}+{b}={a + b}." for a, b in rng.choices(train, k=6))
                                         for _ in range(16)], steps=300, width=24)
    return folder, train[:20] + held_out[:10]


def _records(questions: list[tuple[int, int]]) -> list[ExpertRecord]:
    # every third prompt carries a one-shot prefix, so batches mix prompt lengths (left padding matters)
    return [ExpertRecord(prompt=("1+1=2. " if i % 3 == 0 else "") + f"{a}+{b}=", solution=f"{a + b}.",
                         answer=str(a + b), id=f"q{i}", task=TASK) for i, (a, b) in enumerate(questions)]


TASK_BODY = f"""output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
target_delimiter: ""
generation_kwargs: {{until: ["."], max_gen_toks: {MAX_GEN_TOKS}, do_sample: false}}
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
"""


def test_greedy_exact_match_equals_lm_eval(saved_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    offline(monkeypatch, tmp_path)
    folder, questions = saved_model
    records = _records(questions)

    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = DecodeConfig(greedy=True, max_new_tokens=MAX_GEN_TOKS, stop=(".",), batch_size=8,
                          prompt_format=PromptConfig(separator=""), progress=False)
    # lm-eval's exact_match: the whole (stop-truncated) completion against the target, ignore_case only
    scorer = ExactMatchScorer(patterns=(), strip=False, ignore_case=True, remove_commas=False, strip_period=False)
    ours = evaluate_generative(model, tokenizer, records, config=config, scorer=scorer)
    rows = [{"id": r.id, "question": r.prompt, "answer": r.answer} for r in records]
    theirs = lmeval_samples(folder, TASK, rows, TASK_BODY, tmp_path)

    assert set(theirs) == {r.id for r in records}
    for q in ours.questions:
        sample = theirs[q.id]
        assert q.completions == (sample["filtered_resps"][0],), q.id
        assert q.pass_at_1 == float(sample["exact_match"]), (q.id, q.completions, sample["target"])
    lm_eval_mean = sum(float(s["exact_match"]) for s in theirs.values()) / len(theirs)
    assert ours.pass_at_1 == pytest.approx(lm_eval_mean)
    assert 0 < ours.pass_at_1 < 1, "the trained model should get some questions right and some wrong"
