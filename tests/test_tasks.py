"""Synthetic task families, training corpus, negatives and the real-set loaders."""

from __future__ import annotations

import pickle
import random
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from evalcast.data.files import load_records
from evalcast.data.formatting import render_prompt
from evalcast.data.records import GSM8K_ANSWER
from evalcast.tasks import (
    CATEGORIES,
    CHARSET,
    LEVELS,
    TASKS,
    MixSchedule,
    get_task,
    humaneval_program,
    is_heldout,
    load_gsm8k,
    load_humaneval,
    make_negatives,
    training_batch,
    training_records,
    training_stream,
    training_text,
    training_texts,
    write_task_suite,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data is not available")


def _value(expr: str) -> int:
    """Evaluate ``12+3-4`` without eval()."""
    assert re.fullmatch(r"\d+([+-]\d+)*", expr), expr
    return sum(int(t) for t in re.findall(r"[+-]?\d+", expr))


def _chain_bindings(prompt: str) -> tuple[dict[str, int], str]:
    *defs, query = prompt.split()
    rules = dict(d.split("=") for d in defs)

    def resolve(name: str) -> int:
        rhs = rules[name]
        return int(rhs) if rhs.isdigit() else resolve(rhs[0]) + _value("0" + rhs[1:])

    return {name: resolve(name) for name in rules}, query.rstrip("?")


def _expected_answer(task: str, prompt: str) -> str:
    if task == "add":
        return str(_value(prompt))
    if task == "sort":
        return "".join(sorted(prompt.removeprefix("sort ")))
    values, query = _chain_bindings(prompt)
    return str(values[query])


def _step_is_true(task: str, prompt: str, line: str) -> bool:
    if task == "add":
        lhs, rhs = line.rsplit("=", 1)
        return _value(lhs) == int(rhs)
    if task == "sort":
        m = re.fullmatch(r"min (\d+)=(\d)", line)
        return m is not None and min(m.group(1)) == m.group(2)
    parts = line.split("=")
    if len(parts) == 2:  # a copied constant: must be the prompt's definition
        return line in prompt.split()
    name, expr, result = parts
    return _value(expr) == int(result) and _chain_bindings(prompt)[0][name] == int(result)


def _is_column_method(prompt: str, steps: list[str]) -> bool:
    """Add: per operation, one line per column (least significant first) with the carry or borrow of the
    previous column and this column's result digit, then ``a op b=result``."""
    first, *rest = re.findall(r"[+-]?\d+", prompt)
    total, i = int(first), 0
    for token in rest:
        op, b = token[0], int(token[1:])
        result = total + b if op == "+" else total - b
        width = max(len(str(total)), len(str(b)))
        carry = 0
        for k in range(width if width > 1 else 0):
            x, y = total // 10**k % 10, b // 10**k % 10
            borrow = r"(\+10)?" if op == "-" else "()"
            m = re.fullmatch(rf"{x}\{op}{y}(\{op}1)?{borrow}=(\d+)", steps[i + k])
            if m is None or bool(m.group(1)) != bool(carry) or int(m.group(3)) % 10 != result // 10**k % 10:
                return False
            carry = int(m.group(3)) >= 10 if op == "+" else bool(m.group(2))
        i += width if width > 1 else 0
        if steps[i] != f"{total}{op}{b}={result}" or (width > 1 and result // 10**width != carry):
            return False
        i, total = i + 1, result
    return i == len(steps)


@pytest.fixture(scope="module")
def samples():
    return {name: family.sample(50, seed=3, negatives=True) for name, family in TASKS.items()}


def test_sampling_is_deterministic_by_seed():
    for family in TASKS.values():
        first = family.sample(20, seed=7)
        assert first == family.sample(20, seed=7)
        assert [r.prompt for r in first] != [r.prompt for r in family.sample(20, seed=8)]
        # per level, a larger sample extends a smaller one
        assert {r.id for r in first} <= {r.id for r in family.sample(40, seed=7)}
    mix = {"add": 1.0, "sort": 1.0}
    assert training_batch(mix, 5, 16, seed=1) == training_batch(mix, 5, 16, seed=1)
    assert training_batch(mix, 5, 16, seed=1) != training_batch(mix, 6, 16, seed=1)
    stream = training_stream(mix, 16, seed=1, start_step=5)  # a resumed run sees the same batches
    assert [next(stream), next(stream)] == [training_batch(mix, 5, 16, seed=1), training_batch(mix, 6, 16, seed=1)]
    assert training_texts(mix, 16, seed=1) == training_batch(mix, 0, 16, seed=1)


def test_answers_are_correct_and_every_step_is_true(samples):
    for name, records in samples.items():
        assert len({r.id for r in records}) == len(records) == 50
        for r in records:
            assert r.task == name and r.domain == TASKS[name].domain and r.meta["difficulty"] in LEVELS
            assert r.answer == _expected_answer(name, r.prompt), r
            *steps, last = r.solution.split("\n")
            assert last == f"#### {r.answer}" and GSM8K_ANSWER.search(r.solution).group(1) == r.answer
            assert len(steps) == r.meta["n_steps"] >= 1
            assert all(_step_is_true(name, r.prompt, s) for s in steps), r.solution
            assert name != "add" or _is_column_method(r.prompt, steps), r.solution


def test_difficulty_increases_length_and_steps():
    for family in TASKS.values():
        lengths, steps = [], []
        for level in LEVELS:
            records = family.sample(40, seed=0, difficulties=[level])
            assert {r.meta["difficulty"] for r in records} == {level}
            lengths.append(sum(len(training_text(r)) for r in records) / len(records))
            steps.append(sum(r.meta["n_steps"] for r in records) / len(records))
        assert lengths == sorted(lengths) and len(set(lengths)) == len(lengths), (family.name, lengths)
        assert steps == sorted(steps) and steps[-1] >= 2 * steps[0], (family.name, steps)
        assert lengths[-1] > 1.5 * lengths[0] and max(lengths) < 120, (family.name, lengths)


def test_texts_use_the_declared_charset(samples):
    texts = [training_text(r) for rs in samples.values() for r in rs]
    texts += [n.text for rs in samples.values() for r in rs for n in r.negatives]
    assert set("".join(texts)) <= set(CHARSET)


def test_training_text_is_the_scored_format():
    for r in training_records({"add": 1, "sort": 1, "chain": 1}, step=0, batch_size=30):
        text = training_text(r)
        assert text == render_prompt(r.prompt) + r.solution == f"{r.prompt}\n{r.solution}"


def test_training_never_sees_heldout_questions():
    evaluation = [r for family in TASKS.values() for r in family.sample(100, seed=0)]
    assert all(is_heldout(r.task, r.prompt) for r in evaluation)
    heldout = {r.prompt for r in evaluation}
    trained = [r for step in range(60) for r in training_records({"add": 1, "sort": 1, "chain": 1}, step, 50, seed=4)]
    assert not any(is_heldout(r.task, r.prompt) for r in trained)
    assert not heldout & {r.prompt for r in trained}
    # the split is a fixed share of the question space, not an artefact of seeds
    rng = random.Random(0)
    drawn = [TASKS["chain"].make(rng, 3) for _ in range(3000)]
    share = sum(is_heldout(r.task, r.prompt) for r in drawn) / len(drawn)
    assert 0.17 < share < 0.23


def test_mix_schedule_drops_a_task_midway():
    schedule = MixSchedule.constant({"add": 0.5, "sort": 0.3, "chain": 0.2}).dropping("sort", at_step=10)
    assert schedule.weights_at(9) == pytest.approx({"add": 0.5, "sort": 0.3, "chain": 0.2})
    assert schedule.weights_at(10) == pytest.approx({"add": 0.5 / 0.7, "chain": 0.2 / 0.7})
    before = {r.task for s in range(10) for r in training_records(schedule, s, 20)}
    after = {r.task for s in range(10, 30) for r in training_records(schedule, s, 20)}
    assert before == {"add", "sort", "chain"} and after == {"add", "chain"}
    assert pickle.loads(pickle.dumps(schedule)) == schedule  # travels to data-loader workers
    with pytest.raises(ValueError, match="unknown task"):
        MixSchedule.constant({"mul": 1.0})
    with pytest.raises(ValueError, match="step 0"):
        MixSchedule(((5, {"add": 1.0}),))
    with pytest.raises(ValueError, match="not in the mix"):
        schedule.dropping("sort", at_step=20)


def test_negatives_are_minimal_wrong_and_of_each_category(samples):
    for name, records in samples.items():
        for r in records:
            assert tuple(n.category for n in r.negatives) == CATEGORIES
            pos = r.solution.split("\n")
            for neg in r.negatives:
                lines = neg.text.split("\n")
                assert len(lines) == len(pos) and abs(len(neg.text) - len(r.solution)) <= 5
                changed = [i for i, (a, b) in enumerate(zip(pos, lines)) if a != b]
                assert len(changed) == 1, (neg, r.solution)
                i = changed[0]
                if neg.category == "wrong_answer":
                    assert i == len(pos) - 1 and GSM8K_ANSWER.search(neg.text).group(1) != r.answer
                elif neg.category == "corrupted_step":
                    assert i < len(pos) - 1 and not _step_is_true(name, r.prompt, lines[i])
                    assert lines[-1] == pos[-1]
                else:
                    assert GSM8K_ANSWER.search(neg.text) is None and lines[-1].endswith(r.answer)
    family = get_task("add")
    record = family.sample(1, seed=0)[0]
    assert family.negatives(record, random.Random(1)) == family.negatives(record, random.Random(1))
    with pytest.raises(ValueError, match="unknown negative categories"):
        family.negatives(record, random.Random(1), ["swapped"])
    with pytest.raises(ValueError, match="last line must be"):
        family.negatives(replace(record, solution="no marker"), random.Random(1))


def test_suite_round_trips_through_jsonl(tmp_path):
    paths = write_task_suite(tmp_path, tasks=["add", "chain"], n_per_task=15, seed=2)
    assert set(paths) == {"add", "chain"}
    for name, path in paths.items():
        assert load_records(path) == TASKS[name].sample(15, seed=2, negatives=True)


def test_bad_names_and_levels_fail_clearly():
    with pytest.raises(KeyError, match="known tasks: add, chain, mc_add, sort"):
        get_task("mul")
    with pytest.raises(ValueError, match="difficulty must be one of"):
        TASKS["add"].make(random.Random(0), 6)
    with pytest.raises(ValueError, match="distinct heldout questions"):
        TASKS["sort"].sample(300, difficulties=[1])  # 3 digits: only ~200 held-out questions exist


@needs_data
def test_gsm8k_loader_on_the_real_file():
    records = load_gsm8k(DATA / "gsm8k" / "test.jsonl", negatives=True)
    assert len(records) == 1319 and len({r.id for r in records}) == 1319
    for r in records:
        assert r.task == "gsm8k" and re.fullmatch(r"-?\d+", r.answer), r.answer
        assert r.solution.split("\n")[-1].replace(",", "") == f"#### {r.answer}"
        wrong, broken = r.negatives
        assert wrong.category == "wrong_answer" and broken.category == "broken_format"
        assert wrong.text.split("\n")[:-1] == r.solution.split("\n")[:-1]
        assert GSM8K_ANSWER.search(wrong.text).group(1).replace(",", "") != r.answer
    # GSM8K steps do not end in "=<n>": no corrupted_step negative can be built, so none is attached
    assert [n.category for n in make_negatives(records[0], random.Random(0))] == ["wrong_answer", "broken_format"]
    stripped = load_gsm8k(DATA / "gsm8k" / "test.jsonl", strip_annotations=True, limit=50)
    assert len(stripped) == 50 and not any("<<" in r.solution or ">>" in r.solution for r in stripped)
    assert [r.answer for r in stripped] == [r.answer for r in records[:50]]
    assert "<<16-3-4=9>>" in records[0].solution and "16 - 3 - 4 = 9 duck" in stripped[0].solution
    with pytest.raises(FileNotFoundError, match="pass path="):
        load_gsm8k(DATA / "gsm8k" / "missing.jsonl")


@needs_data
def test_humaneval_canonical_solutions_pass_their_tests():
    records = load_humaneval(DATA / "humaneval" / "HumanEval.jsonl.gz")
    assert len(records) == 164 and records[0].id == "HumanEval/0" and records[0].answer is None
    assert all(r.task == "humaneval" and set(r.meta) == {"test", "entry_point"} for r in records)
    assert render_prompt(records[0].prompt) == records[0].prompt  # prompts end in a newline: no separator

    def passes(program: str) -> bool:
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=30, check=False)
        return done.returncode == 0

    for r in (records[0], records[2], records[53]):
        assert passes(humaneval_program(r)), r.id
    assert not passes(humaneval_program(records[0], "    return None\n"))
