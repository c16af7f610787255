"""evalcast's greedy exact-match pass@1 equals lm-evaluation-harness's exact_match, question by question.

A tiny char-level GPT-2 is trained briefly on "a+b=c." facts (some questions right, some wrong), saved
with save_pretrained, and evaluated by both: lm-eval loads it itself from the saved folder (custom task
YAML over a local JSONL, fully offline, in-process ``simple_evaluate`` with ``HFLM``), evalcast
reloads it with ``AutoModelForCausalLM``. Same prompt text (lm-eval's zero-shot context is
``doc_to_text``; evalcast renders with an empty separator), same stop (``until=["."]``), same
``max_gen_toks``, greedy.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from evalcast.data.formatting import PromptConfig
from evalcast.data.records import ExpertRecord
from evalcast.generate import DecodeConfig, ExactMatchScorer, evaluate_generative
from evalcast.toy import char_tokenizer, tiny_gpt2

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is a dev dependency (pip install evalcast[lmeval])")

TASK = "evalcast_arith_crosscheck"
MAX_GEN_TOKS = 4


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, int]]]:
    """Train 300 plain-torch steps on 80 of the 100 one-digit sums; return the folder and the questions."""
    tokenizer = char_tokenizer()
    facts = [(a, b) for a in range(10) for b in range(10)]
    rng = random.Random(0)
    rng.shuffle(facts)
    train, held_out = facts[:80], facts[80:]
    with torch.random.fork_rng():
        model = tiny_gpt2(tokenizer, n_layer=2, n_embd=48, n_head=2, n_positions=64, seed=0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
        model.train()
        for _ in range(300):
            lines = [" ".join(f"{a}+{b}={a + b}." for a, b in rng.choices(train, k=6))[:24] for _ in range(16)]
            batch = torch.tensor([tokenizer(line)["input_ids"] for line in lines])
            loss = model(input_ids=batch, labels=batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    folder = tmp_path_factory.mktemp("arith_model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, train[:20] + held_out[:10]


def _records(questions: list[tuple[int, int]]) -> list[ExpertRecord]:
    # every third prompt carries a one-shot prefix, so batches mix prompt lengths (left padding matters)
    return [ExpertRecord(prompt=("1+1=2. " if i % 3 == 0 else "") + f"{a}+{b}=", solution=f"{a + b}.",
                         answer=str(a + b), id=f"q{i}", task=TASK) for i, (a, b) in enumerate(questions)]


def _lmeval_samples(folder: Path, records: list[ExpertRecord], scratch: Path) -> dict[str, dict]:
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    data = scratch / "arith.jsonl"
    data.write_text("".join(json.dumps({"id": r.id, "question": r.prompt, "answer": r.answer}) + "\n" for r in records))
    tasks = scratch / "tasks"
    tasks.mkdir()
    (tasks / f"{TASK}.yaml").write_text(f"""task: {TASK}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
  cache_dir: {scratch / "datasets_cache"}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
target_delimiter: ""
generation_kwargs: {{until: ["."], max_gen_toks: {MAX_GEN_TOKS}, do_sample: false}}
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
metadata: {{version: 1.0}}
""")
    lm = HFLM(pretrained=str(folder), dtype="float32", device="cpu", batch_size=8)
    out = lm_eval.simple_evaluate(model=lm, tasks=[TASK], task_manager=TaskManager(include_path=str(tasks)),
                                  log_samples=True, verbosity="WARNING")
    assert out is not None
    return {s["doc"]["id"]: s for s in out["samples"][TASK]}


def test_greedy_exact_match_equals_lm_eval(saved_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    folder, questions = saved_model
    records = _records(questions)

    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = DecodeConfig(greedy=True, max_new_tokens=MAX_GEN_TOKS, stop=(".",), batch_size=8,
                          prompt_format=PromptConfig(separator=""), progress=False)
    # lm-eval's exact_match: the whole (stop-truncated) completion against the target, ignore_case only
    scorer = ExactMatchScorer(patterns=(), strip=False, ignore_case=True, remove_commas=False, strip_period=False)
    ours = evaluate_generative(model, tokenizer, records, config=config, scorer=scorer)
    theirs = _lmeval_samples(folder, records, tmp_path)

    assert set(theirs) == {r.id for r in records}
    for q in ours.questions:
        sample = theirs[q.id]
        assert q.completions == (sample["filtered_resps"][0],), q.id
        assert q.pass_at_1 == float(sample["exact_match"]), (q.id, q.completions, sample["target"])
    lm_eval_mean = sum(float(s["exact_match"]) for s in theirs.values()) / len(theirs)
    assert ours.pass_at_1 == pytest.approx(lm_eval_mean)
    assert 0 < ours.pass_at_1 < 1, "the trained model should get some questions right and some wrong"
