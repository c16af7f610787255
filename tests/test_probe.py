"""The hidden-state probe: question-level splits, earlier-predicts-later scoring, drift, resume, refusals."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from evalcast.data import EXPERT, ExpertSet
from evalcast.generate import DecodeConfig, evaluate_generative
from evalcast.probe import (
    NetConfig,
    ProbeConfig,
    ProbeReason,
    ProbeTrainer,
    features_from_arrays,
    features_to_arrays,
    heldout_mask,
    question_folds,
    score,
    score_by_task,
)
from evalcast.probe.nets import AttentionPool, _initialise
from evalcast.runs import RunStore
from evalcast.stats import StatsConfig, StatsTap, check_compatible, run_forward
from evalcast.stats.features import CheckpointFeatures, FeatureTap
from evalcast.tasks import get_task, training_text
from evalcast.toy import TextDataset, tiny_gpt2

Labels = dict[str, tuple[int, int]]


def synthetic(step: int, *, n_q: int = 160, sign: float = 1.0, growth: float = 0.0, n: int = 4,
              tokens: bool = False, solved: float | None = None) -> tuple[CheckpointFeatures, Labels, dict[str, str]]:
    """Features of one checkpoint and labels drawn from them.

    Every question has a fixed latent vector: 8 dims carry the signal (pass@1 = sigmoid(±2.5 w·u)), 16 are
    nuisance. ``growth`` mimics activation drift: nuisance dims scale by 1 + growth, signal dims by
    1 + 0.1·growth, and every feature shifts by ``growth``. ``solved`` overrides pass@1 with a constant.
    """
    latent = np.random.default_rng(1).standard_normal((n_q, 24))
    noise = np.random.default_rng([2, step]).standard_normal((n_q, 24)) * 0.3
    scale = np.r_[np.full(8, 1.0 + 0.1 * growth), np.full(16, 1.0 + growth)]
    x = ((latent + noise) * scale + growth).astype(np.float32)
    w = np.random.default_rng(3).standard_normal(8)
    p = 1 / (1 + np.exp(-sign * 2.5 * (latent[:, :8] @ w) / np.sqrt(8)))
    c = np.random.default_rng([4, step]).binomial(n, p if solved is None else np.full(n_q, solved))
    ids = [f"q{i:03d}" for i in range(n_q)]
    toks = None
    if tokens:  # the question's features at one random position among noise tokens
        rng = np.random.default_rng([5, step])
        toks = []
        for row in x:
            t = rng.standard_normal((int(rng.integers(2, 8)), 25))
            t[:, 0] = 0.0
            at = int(rng.integers(len(t)))
            t[at, 0], t[at, 1:] = 3.0, row
            toks.append(t.astype(np.float16))
    features = CheckpointFeatures(ids, (2, 3), np.stack([x, 0.5 * x], 1), np.stack([x, x], 1), toks)
    return features, {q: (n, int(k)) for q, k in zip(ids, c)}, {q: ("even" if i % 2 else "odd")
                                                                 for i, q in enumerate(ids)}


def rng_states() -> tuple:
    return random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone()


# ---------------------------------------------------------------- splits
def test_splits_never_leak_a_question():
    rng = np.random.default_rng(0)
    for trial in range(200):
        pool = [f"q{i}" for i in range(int(rng.integers(2, 40)))]
        rows = list(rng.choice(pool, size=int(rng.integers(len(pool), 4 * len(pool) + 1))))
        rows += [q for q in pool if q not in rows]
        fraction, seed, k = float(rng.uniform(0, 0.9)), int(rng.integers(1000)), int(rng.integers(2, 7))
        held = heldout_mask(rows, fraction, seed)
        for q in pool:  # a question is on one side, whatever its rows, their order or the other questions
            sides = set(held[[i for i, r in enumerate(rows) if r == q]])
            assert sides == {bool(heldout_mask([q], fraction, seed)[0])}
        strata = rng.uniform(size=len(rows))
        folds = question_folds(rows, k, seed, strata)
        assert folds.min() >= 0 and folds.max() < min(k, len(pool))
        for q in pool:
            assert len(set(folds[[i for i, r in enumerate(rows) if r == q]])) == 1
        sizes = np.bincount([folds[rows.index(q)] for q in pool])
        assert sizes.max() - sizes.min() <= 1, trial
    # stratified dealing: the only two solved questions never share a fold
    ids = [f"q{i}" for i in range(30)]
    for seed in range(20):
        folds = question_folds(ids, 3, seed, [1.0 if q in ("q4", "q17") else 0.0 for q in ids])
        assert folds[4] != folds[17]


def test_heldout_labels_never_reach_the_fit():
    features, labels, tasks = synthetic(1)
    flipped = {q: (n, n - c) if held else (n, c)
               for (q, (n, c)), held in zip(labels.items(), heldout_mask(list(labels), 0.2, 0))}
    assert flipped != labels
    predictions = []
    for given in (labels, flipped):
        trainer = ProbeTrainer()
        trainer.add_anchor(1, features, given, tasks)
        predictions.append(trainer.predict(2, synthetic(2)[0], tasks).p_solve)
    np.testing.assert_array_equal(predictions[0], predictions[1])


# ---------------------------------------------------------------- metrics
def test_scores_on_known_values():
    s = score(np.array([0.9, 0.2, 0.6]), np.array([1, 4, 2]), np.array([1, 1, 1]))
    # samples (p, y): (0.9, 1), (0.2, 1), (0.2, 0) x3, (0.6, 1), (0.6, 0); ties count half
    assert s.auroc == pytest.approx((4 + 1.5 + 3.5) / (3 * 4))
    assert s.brier == pytest.approx((0.01 + 0.64 + 3 * 0.04 + 0.16 + 0.36) / 7)
    assert s.pass_at_1 == pytest.approx((1 + 0.25 + 0.5) / 3) and s.pass_at_1_pred == pytest.approx(1.7 / 3)
    one_class = score(np.array([0.3, 0.7]), np.array([2, 2]), np.array([0, 0]))
    assert math.isnan(one_class.auroc) and "AUROC undefined" in one_class.note
    by_task = score_by_task(np.array([0.3, 0.7, 0.5]), np.ones(3), np.array([0, 1, 1]), ["a", "b", "a"])
    assert list(by_task) == ["a", "b", "all"] and by_task["b"].questions == 1


# ---------------------------------------------------------------- anchors
def test_earlier_anchor_is_scored_before_retraining():
    """The relation flips at step 200: the step-100 probe must be scored (and fail) before it relearns."""
    trainer = ProbeTrainer()
    first = trainer.add_anchor(100, *synthetic(100))
    assert first.forward_reason == ProbeReason.NO_PROBE and first.fit["all"].auroc > 0.8
    features, labels, tasks = synthetic(200, sign=-1.0)
    before = trainer.predict(200, features, tasks).p_solve
    report = trainer.add_anchor(200, features, labels, tasks)
    held = heldout_mask(features.ids, 0.2, 0)
    expected = score_by_task(before[held], np.array([labels[q][0] for q in features.ids])[held],
                             np.array([labels[q][1] for q in features.ids])[held],
                             [tasks[q] for q in np.array(features.ids)[held]])
    assert report.forward == expected
    assert report.forward["all"].auroc < 0.25
    assert report.metrics()["evalcast/all/probe_auroc"] == expected["all"].auroc
    assert set(report.metrics()) >= {f"evalcast/{t}/probe_{m}" for t in ("odd", "even", "all")
                                     for m in ("auroc", "brier", "pass@1_error")}
    assert report.anchors == (100, 200) and report.heldout_questions == int(held.sum())
    assert not np.array_equal(trainer.predict(200, features, tasks).p_solve, before)  # it did retrain


def test_anchors_must_increase_and_labels_must_be_valid():
    trainer = ProbeTrainer()
    features, labels, tasks = synthetic(1)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        trainer.add_anchor(1, features, {**labels, "q000": (2, 3)}, tasks)
    with pytest.raises(ValueError, match="no features"):
        trainer.add_anchor(1, features, {**labels, "ghost": (1, 1)}, tasks)
    trainer.add_anchor(5, features, labels, tasks)
    with pytest.raises(ValueError, match="increasing step order"):
        trainer.add_anchor(5, features, labels, tasks)
    narrow = CheckpointFeatures(features.ids, features.layers, features.last[..., :8], features.mean[..., :8])
    with pytest.raises(ValueError, match="probe inputs per question"):
        trainer.predict(6, narrow, tasks)


def test_too_few_or_one_class_labels_give_a_reason_and_no_prediction():
    trainer = ProbeTrainer()
    features, labels, tasks = synthetic(1)
    empty = trainer.predict(1, features, tasks)
    assert not empty.ok and empty.reason == ProbeReason.NO_ANCHORS and empty.metrics() == {}

    all_wrong = trainer.add_anchor(1, *synthetic(1, solved=0.0))
    assert all_wrong.fit_reason == ProbeReason.SINGLE_CLASS and "ever solved" in all_wrong.fit_message
    refused = trainer.predict(1, features, tasks)
    assert refused.p_solve is None and refused.reason == ProbeReason.SINGLE_CLASS and refused.metrics() == {}

    few = ProbeTrainer().add_anchor(1, features, {q: labels[q] for q in features.ids[:6]}, tasks)
    assert few.fit_reason == ProbeReason.TOO_FEW_QUESTIONS and few.fit == {}

    # the first anchor is all failures; a later one with successes makes the probe usable
    report = trainer.add_anchor(2, features, labels, tasks)
    assert report.forward_reason == ProbeReason.NO_PROBE and report.fit_reason == ""
    assert trainer.predict(2, features, tasks).ok


def test_auroc_undefined_when_held_out_labels_have_one_class():
    trainer = ProbeTrainer()
    trainer.add_anchor(1, *synthetic(1))
    report = trainer.add_anchor(2, *synthetic(2, solved=1.0))
    assert math.isnan(report.forward["all"].auroc) and "succeeded" in report.forward_message
    assert "evalcast/all/probe_auroc" not in report.metrics() and "evalcast/all/probe_brier" in report.metrics()


# ---------------------------------------------------------------- drift
def test_per_checkpoint_normalisation_resists_activation_growth():
    """Train at low activation scale, score where nuisance features grew 31x: without per-checkpoint
    z-scores the probe's small nuisance weights swamp the signal."""
    scores = {}
    for normalization in ("checkpoint", "global"):
        trainer = ProbeTrainer(ProbeConfig(normalization=normalization, heldout_fraction=0.3))
        trainer.add_anchor(1, *synthetic(1))
        trainer.add_anchor(2, *synthetic(2, growth=0.5))
        scores[normalization] = trainer.add_anchor(3, *synthetic(3, growth=30.0)).forward["all"]
    assert scores["checkpoint"].auroc > 0.8
    assert scores["global"].auroc < scores["checkpoint"].auroc - 0.1
    assert scores["global"].brier > scores["checkpoint"].brier + 0.1


# ---------------------------------------------------------------- persistence and determinism
@pytest.mark.parametrize("config", [
    ProbeConfig(),
    ProbeConfig(calibration="isotonic", normalization="global", pooling="mean", project_dim=16, layers=(3,)),
    ProbeConfig(model="mlp", calibration="temperature", net=NetConfig(max_epochs=30)),
    ProbeConfig(model="attention", net=NetConfig(max_epochs=30)),
], ids=["logistic", "logistic-isotonic-global-projected", "mlp", "attention"])
def test_resume_is_bit_for_bit(config):
    checkpoints = {step: synthetic(step, tokens=config.model == "attention") for step in (10, 20, 30)}
    trainer = ProbeTrainer(config)
    for step in (10, 20):
        trainer.add_anchor(step, *checkpoints[step])
    assert trainer.ready
    state = json.loads(json.dumps(trainer.state_dict()))
    assert ProbeConfig.from_dict(state["config"]) == config
    resumed = ProbeTrainer(config)
    resumed.load_state_dict(state, {step: checkpoints[step][0] for step in (10, 20)})
    features, labels, tasks = checkpoints[30]
    before, after = trainer.predict(30, features, tasks), resumed.predict(30, features, tasks)
    assert np.array_equal(before.p_solve, after.p_solve) and before.metrics() == after.metrics()
    # retraining after the resume continues exactly as without it
    assert trainer.add_anchor(30, features, labels, tasks).to_dict() == \
        resumed.add_anchor(30, features, labels, tasks).to_dict()
    assert np.array_equal(trainer.predict(40, features, tasks).p_solve, resumed.predict(40, features, tasks).p_solve)
    assert json.dumps(trainer.state_dict()) == json.dumps(resumed.state_dict())


def test_resume_refuses_missing_features_or_another_config():
    trainer = ProbeTrainer()
    trainer.add_anchor(1, *synthetic(1))
    state = json.loads(json.dumps(trainer.state_dict()))
    with pytest.raises(ValueError, match="features of anchor step"):
        ProbeTrainer().load_state_dict(state, {})
    with pytest.raises(ValueError, match="another configuration"):
        ProbeTrainer(ProbeConfig(seed=1)).load_state_dict(state, {1: synthetic(1)[0]})


def test_features_round_trip_through_the_run_store(tmp_path):
    features = synthetic(1, tokens=True)[0]
    store = RunStore(tmp_path)
    store.save_arrays(7, "probe_features", features_to_arrays(features))
    back = features_from_arrays(store.load_arrays(7, "probe_features"))
    assert back.ids == features.ids and back.layers == features.layers
    assert np.array_equal(back.last, features.last) and np.array_equal(back.mean, features.mean)
    assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(back.tokens, features.tokens))


@pytest.mark.parametrize("model", ["logistic", "mlp", "attention"])
def test_training_and_prediction_leave_global_rng_streams_alone(model):
    checkpoints = [synthetic(step, tokens=model == "attention") for step in (1, 2)]
    trainer = ProbeTrainer(ProbeConfig(model=model, net=NetConfig(max_epochs=5)))
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    states = rng_states()
    for step, checkpoint in zip((1, 2), checkpoints):
        trainer.add_anchor(step, *checkpoint)
    assert trainer.predict(3, checkpoints[0][0], checkpoints[0][2]).ok
    after = rng_states()
    assert states[0] == after[0] and np.array_equal(states[1], after[1]) and torch.equal(states[2], after[2])


# ---------------------------------------------------------------- attention pooling
def test_attention_pooling_masks_padding():
    net = _initialise(AttentionPool(6, heads=2), torch.Generator().manual_seed(0))
    with torch.no_grad():
        net.query.normal_(generator=torch.Generator().manual_seed(1))
    x = torch.randn(1, 4, 6, generator=torch.Generator().manual_seed(2))
    padded = torch.cat([x, torch.full((1, 5, 6), 1e3)], dim=1)
    mask = torch.arange(9)[None] < 4
    alone = net(x, torch.ones(1, 4, dtype=torch.bool))
    torch.testing.assert_close(net(padded, mask), alone)
    assert not torch.allclose(net(padded, torch.ones(1, 9, dtype=torch.bool)), alone)


def test_attention_probe_learns_from_token_features():
    """The signal sits at one random prompt position among noise tokens."""
    trainer = ProbeTrainer(ProbeConfig(model="attention", heldout_fraction=0.3))
    trainer.add_anchor(1, *synthetic(1, tokens=True, n_q=300))
    report = trainer.add_anchor(2, *synthetic(2, tokens=True, n_q=300))
    assert report.forward["all"].auroc > 0.7


# ---------------------------------------------------------------- a real model
def test_probe_on_a_real_model_beats_chance_on_held_out_questions(tok, tmp_path):
    """A tiny GPT-2 trained only on easy ``add`` questions (difficulty 1-2) solves them and fails hard ones
    (3-5); its prompt features, captured in the proxy pass, must tell them apart on unseen questions."""
    task = get_task("add")
    easy = task.sample(64, seed=3, difficulties=[1, 2], split="train")
    hard = task.sample(64, seed=3, difficulties=[3, 4, 5], split="heldout")
    model = tiny_gpt2(tok, n_layer=2, n_embd=64, n_head=2, n_positions=128)
    data = TextDataset(tok, [training_text(r) for r in easy], 48)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    steps, generator = 500, torch.Generator().manual_seed(0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 30) * max(0.1, 1 - s / steps))
    model.train()
    for _ in range(steps):
        batch = torch.randint(len(data), (32,), generator=generator)
        loss = model(input_ids=data.input_ids[batch], attention_mask=data.attention_mask[batch],
                     labels=data.labels[batch]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()

    records = easy + hard
    result = evaluate_generative(model, tok, records, config=DecodeConfig(max_new_tokens=80, batch_size=64,
                                                                          progress=False))
    labels = {q.id: (q.n, q.correct_count) for q in result.questions}
    solved = {d: np.mean([labels[r.id][1] for r in records if r.meta["difficulty"] in d]) for d in ((1, 2), (3, 4, 5))}
    assert solved[(1, 2)] > 0.5 and solved[(3, 4, 5)] < 0.1, solved  # the premise: easy solved, hard failed

    experts = ExpertSet(records, tok, cache_dir=tmp_path, progress=False)
    table = experts.table
    rows = np.flatnonzero(table.kind == EXPERT)
    tap = FeatureTap(rows=rows)
    head = check_compatible(model, vocab_size=experts.vocab_size, longest=int(table.lengths.max()))
    with torch.no_grad():
        run_forward(model, experts, experts.batches(max_tokens=2048, pad_multiple=8),
                    StatsTap(experts, head, StatsConfig(), torch.device("cpu")), [tap], device=torch.device("cpu"))
    slots, last, mean, _ = tap.collect()
    ids = [experts.records[table.record_index[rows[s]]].id for s in slots]
    features = CheckpointFeatures(ids, tap.layers, last, mean)

    report = ProbeTrainer(ProbeConfig(heldout_fraction=0.3)).add_anchor(500, features, labels,
                                                                       {r.id: r.task for r in records})
    assert report.fit_reason == "" and report.heldout_questions >= 20
    assert report.fit["all"].auroc > 0.7, report.fit["all"]
