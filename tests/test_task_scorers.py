"""Scorers for any task, on a real tiny model: exact match with a task's own pattern, numeric, code, a plain
function, a per-row answer regex, a mapping task -> scorer in ``AnchorConfig``, and ``--scorer`` text.

The tiny GPT-2 (seed 3) is random but greedy decoding is deterministic, so each record's reference answer
is written against what the model really generates: ``'count: 1 2 3'`` -> ``'333333333333'``, ``'name a
colour'`` -> ``'rrrrrrrrrrrr'``, ``'what is 2+2?'`` -> ``'????'``, the code prompt -> ``'#XXXXXXXXXXX'``. A
companion record with another answer checks that each scorer also says no.
"""

from __future__ import annotations

import pytest
import torch

from evalcast.cli.scorers import parse_scorers
from evalcast.data import ExpertRecord, ExpertSet, PromptConfig, TokenizeConfig
from evalcast.generate import (
    CodeExecutionScorer,
    DecodeConfig,
    ExactMatchScorer,
    NumericScorer,
    ScoreResult,
    evaluate_generative,
)
from evalcast.monitor import AnchorConfig, Monitor
from evalcast.toy import tiny_gpt2

FMT = PromptConfig(separator="")
DECODE = DecodeConfig(max_new_tokens=12, prompt_format=FMT, progress=False)
CODE = "def f():\n    return 1\n#"


@pytest.fixture(scope="module")
def lm(tok):
    with torch.random.fork_rng():
        return tiny_gpt2(tok, n_layer=2, seed=3)


def _run(lm, tok, records, scorer):
    result = evaluate_generative(lm, tok, records, config=DECODE, scorer=scorer)
    return {q.id: (q.correct[0], q.reasons[0], q.extracted[0]) for q in result.questions}


def test_completions_are_what_the_docstring_says(lm, tok) -> None:
    records = [ExpertRecord(prompt=p, solution="x", answer="x", id=str(i))
               for i, p in enumerate(["count: 1 2 3", "name a colour", "what is 2+2?", CODE])]
    texts = [q.completions[0] for q in evaluate_generative(lm, tok, records, config=DECODE).questions]
    assert texts == ["333333333333", "rrrrrrrrrrrr", "????", "#XXXXXXXXXXX"]


def test_exact_match_with_the_tasks_own_pattern(lm, tok) -> None:
    records = [ExpertRecord(prompt="name a colour", solution="red. Colour: red", answer="RRRRRRRRRRRR", id="yes"),
               ExpertRecord(prompt="name a colour", solution="red. Colour: red", answer="red", id="no")]
    assert _run(lm, tok, records, ExactMatchScorer(patterns=(r"^(r+)",))) == {
        "yes": (True, "correct", "rrrrrrrrrrrr"), "no": (False, "wrong answer", "rrrrrrrrrrrr")}
    # the GSM8K default finds no '####' line: the silent zero the issue hit
    assert _run(lm, tok, records, None)["yes"] == (False, "no answer extracted", None)


def test_numeric_scorer_compares_numbers_not_strings(lm, tok) -> None:
    records = [ExpertRecord(prompt="count: 1 2 3", solution="three 3s: 333", answer="333.0", id="yes"),
               ExpertRecord(prompt="count: 1 2 3", solution="three 3s: 333", answer="334", id="no")]
    assert _run(lm, tok, records, NumericScorer(patterns=(r"(\d{3})",))) == {
        "yes": (True, "correct", "333"), "no": (False, "wrong answer", "333")}


def test_code_execution_scorer_runs_the_tests(lm, tok) -> None:
    def row(id_: str, want: int) -> ExpertRecord:
        return ExpertRecord(prompt=CODE, solution=" done", id=id_, task="code", meta={
            "test": f"def check(candidate):\n    assert candidate() == {want}\n", "entry_point": "f"})

    verdicts = _run(lm, tok, [row("yes", 1), row("no", 2)], CodeExecutionScorer(prompt_format=FMT))
    assert verdicts["yes"][:2] == (True, "passed")
    assert verdicts["no"][:2] == (False, "test failed")


def test_any_callable_returning_a_bool_or_a_score_result(lm, tok) -> None:
    records = [ExpertRecord(prompt="what is 2+2?", solution="?", answer="?", id="yes"),
               ExpertRecord(prompt="what is 2+2?", solution="!", answer="!", id="no")]
    assert _run(lm, tok, records, lambda record, completion: completion.startswith(record.answer)) == {
        "yes": (True, "correct", None), "no": (False, "wrong answer", None)}
    verdict = _run(lm, tok, records[:1], lambda r, c: ScoreResult(len(c) == 4, "four marks", c[:1]))
    assert verdict == {"yes": (True, "four marks", "?")}
    assert _run(lm, tok, records[:1], lambda r, c: 1 / 0)["yes"][:2] == (False, "scorer error")
    with pytest.raises(TypeError, match="returns a bool or a ScoreResult"):
        _run(lm, tok, records[:1], lambda r, c: "yes")


def test_a_rows_own_answer_pattern_is_used_by_default(lm, tok) -> None:
    records = [ExpertRecord(prompt="what is 2+2?", solution="?? so ????", answer="????", id="yes",
                            meta={"answer_pattern": r"^(\?+)"}),
               ExpertRecord(prompt="what is 2+2?", solution="?? so ???", answer="???", id="no",
                            meta={"answer_pattern": r"^(\?+)"})]
    assert _run(lm, tok, records, None) == {"yes": (True, "correct", "????"), "no": (False, "wrong answer", "????")}
    assert _run(lm, tok, records, NumericScorer())["yes"] == (False, "reference not numeric", None)


def _experts(tok, tmp_path) -> ExpertSet:
    records = [ExpertRecord(prompt="count: 1 2 3", solution="333", answer="333", id="c1", task="count"),
               ExpertRecord(prompt="name a colour", solution="rrr", answer="r", id="w1", task="words"),
               ExpertRecord(prompt="what is 2+2?", solution="4\n#### 4", id="g1", task="gsm")]
    return ExpertSet(records, tok, config=TokenizeConfig(prompt_format=FMT), cache_dir=tmp_path / "cache",
                     progress=False)


def test_anchor_config_takes_a_scorer_per_task(lm, tok, tmp_path) -> None:
    experts = _experts(tok, tmp_path)
    anchors = AnchorConfig(every=1, decode=DECODE, scorer={
        "count": NumericScorer(patterns=(r"(\d{3})",)), "words": lambda r, c: c.startswith(r.answer)})
    monitor = Monitor(experts, run_dir=tmp_path / "run", anchors=anchors, forecast=None)
    monitor.step(lm, step=1)
    anchor = monitor.history()[0].anchor
    assert anchor is not None
    assert dict(anchor.per_question) == {"c1": 1.0, "w1": 1.0, "g1": 0.0}  # gsm keeps the default


def test_a_scorer_for_an_unknown_task_fails_when_the_monitor_is_built(tok, tmp_path) -> None:
    anchors = AnchorConfig(scorer={"countt": NumericScorer()})
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['countt'\].*\['count', 'gsm', 'words'\]"):
        Monitor(_experts(tok, tmp_path), run_dir=tmp_path / "run", anchors=anchors, forecast=None)
    with pytest.raises(ValueError, match=r"AnchorConfig\.scorer="):
        AnchorConfig(scorer={"count": "numeric"})


def test_scorer_specs_from_the_command_line(tmp_path) -> None:
    assert parse_scorers(None) is None
    assert parse_scorers(["exact:Answer: (\\S+)"]) == ExactMatchScorer(patterns=("Answer: (\\S+)",))
    by_task = parse_scorers(["count=numeric:(\\d+)", "code=code", "gsm=exact"])
    assert by_task == {"count": NumericScorer(patterns=("(\\d+)",)), "code": CodeExecutionScorer(),
                       "gsm": ExactMatchScorer()}
    module = tmp_path / "my_scorer.py"
    module.write_text("def judge(record, completion):\n    return completion.strip() == record.answer\n")
    loaded = parse_scorers([f"{module}:judge"])
    assert loaded.score(ExpertRecord(prompt="p", solution="s", answer="7"), " 7 ").correct
    for bad in (["exact", "count=numeric"], ["nope"], [f"{module}:missing"], ["exact:("]):
        with pytest.raises(ValueError):
            parse_scorers(bad)


def test_the_first_anchor_stores_logs_and_reports_a_format_preview(lm, tok, tmp_path) -> None:
    from evalcast.report import write_report
    from evalcast.trackers.tensorboard import TensorBoardTracker
    from tests.readback import tb_text

    experts = _experts(tok, tmp_path)
    tracker = TensorBoardTracker(log_dir=tmp_path / "tb", layout=False)
    anchors = AnchorConfig(every=1, decode=DECODE, scorer={"count": NumericScorer(patterns=(r"(\d{3})",))})
    monitor = Monitor(experts, run_dir=tmp_path / "run", anchors=anchors, forecast=None, trackers=[tracker])
    monitor.step(lm, step=1)
    preview = monitor.store.read_preview()
    assert preview is not None and preview["step"] == 1
    assert [(r["task"], r["prompt"], r["completion"], r["extracted"], r["verdict"]) for r in preview["rows"]] == [
        ("count", "count: 1 2 3", "333333333333", "333", "correct"),
        ("gsm", "what is 2+2?", "????", None, "no answer extracted"),
        ("words", "name a colour", "rrrrrrrrrrrr", None, "no answer extracted")]
    monitor.step(lm, step=2)  # later anchors leave the first preview as it was
    assert monitor.store.read_preview()["step"] == 1
    monitor.close()
    texts = tb_text(tmp_path / "tb")
    table = [text for name, values in texts.items() if "format_preview" in name for _, text in values]
    assert len(table) == 1 and "'count: 1 2 3'" in table[0] and "no answer extracted" in table[0]
    page = write_report(tmp_path / "run").read_text()
    assert "Format preview (first anchor)" in page and "&#x27;333333333333&#x27;" in page


def test_the_docs_example_runs_end_to_end(tok, tmp_path, monkeypatch) -> None:
    """docs/tasks.md's scorer example, as written, on an expert file with its three tasks."""
    import json
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "tasks.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    rows = [{"id": "r1", "task": "reason", "prompt": "what is 3+4?", "solution": "3+4=7. answer: 7", "answer": "7"},
            {"id": "n1", "task": "names", "prompt": "name a prime", "solution": "final: 2", "answer": "2"},
            {"id": "p1", "task": "physics", "prompt": "2 m + 3 m", "solution": "= 5 m", "answer": "5"}]
    (tmp_path / "reasoning.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVALCAST_CACHE", str(tmp_path / "cache"))
    scope = {"tokenizer": tok}
    exec(compile(code, "docs/tasks.md", "exec"), scope)
    with torch.random.fork_rng():
        model = tiny_gpt2(tok, n_layer=1, n_embd=32, n_head=2, seed=0)
    scope["monitor"].step(model, step=1)
    anchor = scope["monitor"].history()[0].anchor
    assert anchor is not None and set(anchor.per_question) == {"r1", "n1", "p1"}
    assert (tmp_path / "run" / "format_preview.json").is_file()
