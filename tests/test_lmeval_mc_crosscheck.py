"""evalcast's multiple-choice ``acc`` and ``acc_norm`` equal lm-evaluation-harness's, question by question.

A tiny char-level GPT-2 is trained briefly on ``mc_add`` training texts (``47+85= 132``), saved with
``save_pretrained``, and evaluated by both on the same held-out ``mc_add`` questions: lm-eval loads it
itself from the saved folder (custom ``multiple_choice`` task YAML over a local JSONL, fully offline,
in-process ``simple_evaluate`` with ``HFLM``; its default target delimiter " " is evalcast's default
``choice_delimiter``), evalcast reloads it with ``AutoModelForCausalLM`` and runs its teacher-forced pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evalcast.data import ExpertSet
from evalcast.monitor import Monitor
from evalcast.proxy.aggregate import metric_name
from evalcast.tasks import get_task, training_text
from tests.lmeval_utils import lmeval_samples, offline, train_and_save

pytest.importorskip("lm_eval", reason="lm-eval is a dev dependency (pip install evalcast[lmeval])")

TASK = "evalcast_mc_crosscheck"


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train 120 plain-torch steps on mc_add training texts of levels 2-3; return the saved folder."""
    train = get_task("mc_add").sample(300, seed=5, difficulties=[2, 3], split="train")
    return train_and_save(tmp_path_factory.mktemp("mc_model"),
                          lambda rng: [" ".join(training_text(r) + "." for r in rng.choices(train, k=4))
                                       for _ in range(16)], steps=120, width=32)


TASK_BODY = """output_type: multiple_choice
doc_to_text: "{{question}}"
doc_to_choice: choices
doc_to_target: gold
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""


def test_acc_and_acc_norm_equal_lm_eval(saved_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    offline(monkeypatch, tmp_path)
    records = get_task("mc_add").sample(40, seed=9, difficulties=[2, 3])

    model = AutoModelForCausalLM.from_pretrained(saved_model)
    tokenizer = AutoTokenizer.from_pretrained(saved_model)
    experts = ExpertSet(records, tokenizer, cache_dir=tmp_path / "cache", progress=False)
    evaluation = Monitor(experts, run_dir=tmp_path / "run", forecast=None).step(model, step=1)
    rows = [{"id": r.id, "question": r.prompt, "choices": list(r.choices), "gold": r.gold} for r in records]
    theirs = lmeval_samples(saved_model, TASK, rows, TASK_BODY, tmp_path)

    assert set(theirs) == {r.id for r in records}
    examples = evaluation.examples
    ids = list(examples["choice_id"])
    accuracies = list(examples["choice_accuracies"])
    for r in records:
        sample, q = theirs[r.id], ids.index(r.id)
        lls = [resp[0][0] for resp in sample["resps"]]
        # fp32 logits on both sides, a few tokens per choice: 1e-4 nats
        np.testing.assert_allclose(examples["choice_loglik"][q], lls, rtol=1e-5, atol=1e-4, err_msg=r.id)
        for metric in ("acc", "acc_norm"):
            assert examples["choice_correct"][q, accuracies.index(metric)] == float(sample[metric]), (r.id, metric)
    for metric in ("acc", "acc_norm"):
        mean = sum(float(s[metric]) for s in theirs.values()) / len(theirs)
        assert evaluation.metrics[metric_name("mc_add", metric)] == pytest.approx(mean, abs=1e-12)
    acc = evaluation.metrics[metric_name("mc_add", "acc")]
    assert 0 < acc < 1, "the trained model should get some questions right and some wrong"
    correct = examples["choice_correct"]
    assert (correct[:, 0] != correct[:, 1]).any(), "acc and acc_norm should disagree on some question"
