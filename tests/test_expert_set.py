"""Tokenizing once: prompt/solution split, BOS/EOS, chat templates, limits, cache, frozen weights, batches."""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import processors

from evalcast.data import EXPERT, NEGATIVE, ExpertRecord, ExpertSet, ExpertSetError, PromptConfig, TokenizeConfig
from evalcast.data.batching import plan_batches
from evalcast.toy import arithmetic_records, char_tokenizer


def decoded_solution(es: ExpertSet, i: int) -> str:
    seq = es.table.sequence(i)
    return es.tokenizer.decode(seq[es.table.solution_start[i]:], skip_special_tokens=False)


def test_solution_tokens_are_exactly_the_solution_then_eos(experts):
    table = experts.table
    for i in range(table.n_seq):
        record = experts.records[table.record_index[i]]
        text = record.solution if table.kind[i] == EXPERT else record.negatives[0].text
        assert decoded_solution(experts, i) == text + "<eos>"
        assert table.n_bytes[i] == len(text.encode())
    prompt = experts.tokenizer.decode(table.sequence(0)[:table.solution_start[0]])
    assert prompt == experts.records[0].prompt + "\n"
    assert (table.kind == NEGATIVE).sum() == len(experts.records)


def test_bos_from_the_tokenizer_policy_and_chat_template(cache_dir):
    tok = char_tokenizer()
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<eos> $A", special_tokens=[("<eos>", tok.eos_token_id)])
    es = ExpertSet([ExpertRecord(prompt="1+1?", solution="2")], tok, cache_dir=cache_dir, progress=False)
    seq = es.table.sequence(0)
    assert seq[0] == tok.eos_token_id and seq[-1] == tok.eos_token_id  # BOS added by the tokenizer, EOS by us
    assert tok.decode(seq[es.table.solution_start[0]:-1]) == "2"

    plain = char_tokenizer()
    plain.chat_template = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}\n{% endfor %}" \
                          "{% if add_generation_prompt %}[assistant]{% endif %}"
    fmt = TokenizeConfig(prompt_format=PromptConfig(chat_template=True))
    es = ExpertSet([ExpertRecord(prompt="1+1?", solution="2")], plain, config=fmt, cache_dir=cache_dir,
                   progress=False)
    seq = es.table.sequence(0)
    assert plain.decode(seq[:es.table.solution_start[0]]) == "[user]1+1?\n[assistant]"


def test_overlong_rows_truncate_skip_or_error(tok, cache_dir):
    rows = [ExpertRecord(prompt="q", solution="x" * 50, id="long"), ExpertRecord(prompt="q", solution="ok", id="short")]
    truncated = ExpertSet(rows, tok, config=TokenizeConfig(max_length=20), cache_dir=cache_dir, progress=False)
    assert truncated.report.truncated == 1 and truncated.table.lengths.max() == 20
    skipped = ExpertSet(rows, tok, config=TokenizeConfig(max_length=20, overlong="skip"), cache_dir=cache_dir,
                        progress=False)
    assert skipped.table.n_seq == 1 and len(skipped.report.skipped) == 1 and "long" in skipped.report.skipped[0]
    with pytest.raises(ExpertSetError, match=r"'long'.*max_length=20"):
        ExpertSet(rows, tok, config=TokenizeConfig(max_length=20, overlong="error"), cache_dir=cache_dir,
                  progress=False)


def test_cache_is_reused_and_keyed_by_settings_and_tokenizer(tok, cache_dir):
    first = ExpertSet(arithmetic_records(), tok, cache_dir=cache_dir, progress=False)
    again = ExpertSet(arithmetic_records(), tok, cache_dir=cache_dir, progress=False)
    assert not first.report.from_cache and again.report.from_cache
    assert np.array_equal(first.table.ids, again.table.ids)
    for name in first.weighting_names:
        assert np.array_equal(first.table.weights[name], again.table.weights[name])
    other_settings = ExpertSet(arithmetic_records(), tok, config=TokenizeConfig(score_eos=False),
                               cache_dir=cache_dir, progress=False)
    assert other_settings.fingerprint != first.fingerprint and not other_settings.report.from_cache
    other_tok = ExpertSet(arithmetic_records(), char_tokenizer("0123456789+-=?\n#abcdefghijklmnopqrstuvwxyz "),
                          cache_dir=cache_dir, progress=False)
    assert other_tok.fingerprint != first.fingerprint
    assert len(list(cache_dir.glob("*.npz"))) == 3


def test_frozen_weights(experts):
    table = experts.table
    w = table.weights
    offsets = table.scored_offsets
    for i in range(table.n_seq):
        part = slice(offsets[i], offsets[i + 1])
        n = offsets[i + 1] - offsets[i]
        assert np.allclose(w["traj"][part], 1 / n)
        assert np.allclose(w["late"][part], np.arange(1, n + 1) / n)
    record = experts.records[table.record_index[0]]
    answer_tokens = table.sequence(0)[table.solution_start[0]:][w["answer"][offsets[0]:offsets[1]] > 0]
    assert experts.tokenizer.decode(answer_tokens) == record.answer
    assert (w["rarity"] > 0).all() and set(np.unique(w["rare"])) <= {0.0, 1.0}
    targets = table.scored_targets()
    common, rare = np.bincount(targets).argmax(), targets[w["rare"] > 0][0]
    assert w["rarity"][targets == common][0] < w["rarity"][targets == rare][0]


@pytest.mark.parametrize("world", [1, 2, 3])
def test_batches_cover_every_sequence_once_with_equal_shapes_per_rank(world):
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 300, size=101)
    plans = [plan_batches(lengths, max_tokens=1024, pad_multiple=64, world_size=world, rank=r) for r in range(world)]
    shapes = [[(p.length, len(p.rows)) for p in rank_plans] for rank_plans in plans]
    assert all(s == shapes[0] for s in shapes)
    rows = np.concatenate([p.rows for rank_plans in plans for p in rank_plans])
    assert sorted(rows[rows >= 0].tolist()) == list(range(101))
    for rank_plans in plans:
        for p in rank_plans:
            real = p.rows[p.rows >= 0]
            assert (lengths[real] <= p.length).all() and (p.length - lengths[real] < 64).all()
            assert p.length * len(p.rows) <= 1024 or len(p.rows) == 1
            assert lengths[p.filler] <= p.length
    assert len({p.length for p in plans[0]}) <= 5


def test_reference_weights_are_frozen_and_change_the_fingerprint(experts, tmp_path):
    import torch

    from evalcast import Monitor
    from evalcast.stats.reference import add_reference_weights
    from evalcast.toy import tiny_gpt2

    reference = tiny_gpt2(experts.tokenizer, n_embd=32, seed=1)
    before = experts.fingerprint
    rng = torch.get_rng_state()
    add_reference_weights(experts, reference, name="tiny-ref")
    assert torch.equal(torch.get_rng_state(), rng) and experts.fingerprint != before
    w = experts.table.weights
    assert {"ref_entropy", "forking", "ref_nll"} <= set(w)
    assert (w["ref_entropy"] > 0).all() and 0.15 < w["forking"].mean() < 0.3
    scored = tiny_gpt2(experts.tokenizer, n_embd=32, seed=2)
    metrics = Monitor(experts, run_dir=tmp_path).evaluate(scored, 1).metrics
    assert np.isfinite(metrics["evalcast/all/nll.forking"]) and np.isfinite(metrics["evalcast/add/top1.ref_nll"])
    assert metrics["evalcast/all/nll.ref_nll"] != metrics["evalcast/all/nll"]
