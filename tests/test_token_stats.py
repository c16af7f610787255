"""Token statistics against a naive full-softmax reference, on random GPT-2 and Llama models."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from evalcast.stats import StatsConfig, StatsTap, check_compatible, run_forward, token_stats
from evalcast.stats.token_stats import token_statistics
from evalcast.toy import tiny_gpt2, tiny_llama

BF16_UNIT_ROUNDOFF = 2.0 ** -8  # bf16 keeps 8 significant bits: rounding moves x by at most 2^-8·|x|
FP32_UNIT_ROUNDOFF = 2.0 ** -24


def reference_statistics(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         logits_dtype: torch.dtype = torch.float32, margin_includes_target: bool = False) -> np.ndarray:
    """Every statistic from its definition: a full-vocabulary log-softmax per row of ``hidden`` ``[n, d]``.

    ``logits_dtype`` and ``margin_includes_target`` exist only to build deliberately wrong references.
    """
    logits = (hidden.to(logits_dtype) @ weight.to(logits_dtype).T).float()
    rows = []
    for z, y in zip(logits, targets.tolist()):
        log_p = torch.log_softmax(z, -1)
        nll = -log_p[y]
        entropy = -(log_p.exp() * log_p).sum()
        rank = 1 + int((z > z[y]).sum())
        others = z if margin_includes_target else torch.cat([z[:y], z[y + 1:]])
        rows.append([nll, nll.neg().exp(), entropy, rank <= 1, rank <= 5, rank <= 10, np.log(rank), 1 / rank,
                     z[y] - others.max(), nll - entropy, log_p.exp().max()])
    return np.array([[float(v) for v in row] for row in rows])


def output_weight(model, experts) -> torch.Tensor:
    return model.get_output_embeddings().weight[:experts.vocab_size].detach().float()


def scored_targets(experts) -> torch.Tensor:
    return torch.as_tensor(experts.table.scored_targets(), dtype=torch.long)


def single_sequence_hidden(model, experts, autocast_dtype=None) -> torch.Tensor:
    """The final hidden state before each scored token, running one unpadded sequence at a time."""
    table, rows = experts.table, []
    with torch.no_grad():
        for i in range(table.n_seq):
            ids = torch.as_tensor(table.sequence(i), dtype=torch.long)[None]
            with torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast_dtype is not None):
                hidden = model(ids, output_hidden_states=True).hidden_states[-1][0]
            rows.append(hidden[int(table.solution_start[i]) - 1:-1])
    return torch.cat(rows)


def naive_statistics(model, experts, autocast_dtype=None) -> np.ndarray:
    """Statistics from the definitions, one sequence at a time."""
    return reference_statistics(single_sequence_hidden(model, experts, autocast_dtype).float(),
                                output_weight(model, experts), scored_targets(experts))


def fast_statistics(model, experts, spec=StatsConfig(), autocast_dtype=None) -> np.ndarray:
    return fast_statistics_and_hidden(model, experts, spec, autocast_dtype)[0]


def fast_statistics_and_hidden(model, experts, spec=StatsConfig(),
                               autocast_dtype=None) -> tuple[np.ndarray, torch.Tensor]:
    """evalcast's per-token statistics (padded batches) and, for each scored token, the final hidden state the
    output layer received in that very pass (read by a hook registered before evalcast's own)."""
    head = check_compatible(model, vocab_size=experts.vocab_size, longest=int(experts.table.lengths.max()))
    tap = StatsTap(experts, head, spec, torch.device("cpu"), keep_per_token=True)
    plans = experts.batches(max_tokens=96, pad_multiple=8)
    seen: list[torch.Tensor] = []
    handle = head.module.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    try:
        with torch.no_grad():
            run_forward(model, experts, plans, tap, device=torch.device("cpu"), autocast_dtype=autocast_dtype)
    finally:
        handle.remove()
    table = experts.table
    hidden = torch.empty(int(table.scored_lengths.sum()), seen[0].shape[-1], dtype=seen[0].dtype)
    for plan, batch_hidden in zip(plans, seen, strict=True):
        for b, i in enumerate(plan.rows):
            if i >= 0:
                start, length = int(table.solution_start[i]), int(table.lengths[i])
                offset = int(table.scored_offsets[i])
                hidden[offset:offset + length - start] = batch_hidden[b, start - 1:length - 1]
    return tap.per_token.cpu().numpy(), hidden


@pytest.mark.parametrize("build", [
    lambda tok: tiny_gpt2(tok, n_embd=32),
    lambda tok: tiny_gpt2(tok, n_embd=32, vocab_size=len(tok) + 13),  # padded vocabulary
    lambda tok: tiny_llama(tok, hidden=32),  # untied output layer, RMSNorm, RoPE, GQA
])
def test_matches_naive_reference(tok, experts, build):
    model = build(tok).eval()
    with torch.no_grad():  # sharpen the distribution so ranks and top-k are not all trivial
        model.get_output_embeddings().weight.mul_(8)
    seven = StatsConfig(chunk_elements=7 * len(tok), min_chunk_positions=1)  # 7 positions per chunk
    fast = fast_statistics(model, experts, seven)
    np.testing.assert_allclose(fast, naive_statistics(model, experts), rtol=1e-4, atol=2e-5)
    assert 0 < fast[:, 3].mean() < 1  # top-1 neither always nor never


def test_ties_count_only_strictly_larger_logits(tok, experts):
    model = tiny_gpt2(tok, n_embd=32).eval()
    with torch.no_grad():
        weight = model.get_output_embeddings().weight
        weight[10:30] = weight[3]  # twenty tokens with identical logits everywhere
    fast = fast_statistics(model, experts)
    np.testing.assert_allclose(fast, naive_statistics(model, experts), rtol=1e-4, atol=2e-5)


BF16_CASES = {  # (model builder, autocast dtype)
    "bf16 autocast": (lambda tok: tiny_llama(tok, hidden=32), torch.bfloat16),
    "bf16 weights": (lambda tok: tiny_gpt2(tok, n_embd=32).to(torch.bfloat16), None),
}
SAME_LAYOUT_TOLERANCE = {"rtol": 1e-4, "atol": 2e-5}  # the fp32 tolerance of the tests above


@pytest.mark.parametrize("case", BF16_CASES)
def test_bf16_statistics_are_fp32_statistics_of_the_bf16_hidden_states(tok, experts, case):
    """The reference reads the hidden states of evalcast's own pass (same padded batches, same bf16 rounding),
    so only fp32 arithmetic separates the two and the fp32 tolerance applies."""
    build, autocast = BF16_CASES[case]
    model = build(tok).eval()
    fast, hidden = fast_statistics_and_hidden(model, experts, autocast_dtype=autocast)
    reference = reference_statistics(hidden.float(), output_weight(model, experts), scored_targets(experts))
    np.testing.assert_allclose(fast, reference, **SAME_LAYOUT_TOLERANCE)
    fp32 = fast_statistics(build(tok).float().eval(), experts)
    assert not np.allclose(fast[:, 0], fp32[:, 0], atol=1e-6)  # the pass really ran in bf16


@pytest.mark.parametrize("wrong", ["bf16 logits", "margin includes the target"])
def test_same_layout_check_catches_a_wrong_statistic(tok, experts, wrong):
    """Logits formed in bf16 (an output layer run under autocast) or a margin taken against the target itself
    are outside the tolerance above: the check can fail."""
    build, autocast = BF16_CASES["bf16 autocast"]
    model = build(tok).eval()
    fast, hidden = fast_statistics_and_hidden(model, experts, autocast_dtype=autocast)
    broken = reference_statistics(hidden.float(), output_weight(model, experts), scored_targets(experts),
                                  logits_dtype=torch.bfloat16 if wrong == "bf16 logits" else torch.float32,
                                  margin_includes_target=wrong == "margin includes the target")
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(fast, broken, **SAME_LAYOUT_TOLERANCE)


def layout_bound(hidden: torch.Tensor, layers: int) -> torch.Tensor:
    """How far bf16 rounding lets one token's final hidden state move between two batch layouts, per entry.

    Both layouts run the same operations on the same values; only the matmul kernels' fp32 accumulation order
    (their blocking depends on the number of rows) differs, which moves a result by far less than one bf16
    step. A result stored in bf16 rounds to one of the two bf16 neighbours of its exact value, so the two
    layouts can store values one bf16 spacing apart: at most 2u·|x| with u = 2^-8. The residual stream is
    written twice per layer (attention, MLP) and the final norm rounds once more, so at most 2L + 1 such
    steps reach the final hidden state; the final norm rescales the row as a whole, which puts each on the
    scale of the row's largest entry: |Δh_i| <= (2L + 1)·2u·max_j |h_j|. This assumes a layer passes a
    perturbation of that size on without amplifying it, which holds for these freshly initialised layers
    (near-isometric); it is not a theorem for every model.
    """
    row_scale = hidden.float().abs().amax(1, keepdim=True)
    return (2 * layers + 1) * 2 * BF16_UNIT_ROUNDOFF * row_scale


@pytest.mark.parametrize("case", BF16_CASES)
def test_bf16_padded_batches_differ_from_single_sequences_by_rounding_only(tok, experts, case):
    """Padded batches (evalcast) and one sequence at a time (the naive reference) differ in bf16 by rounding
    only; the statistics move accordingly."""
    build, autocast = BF16_CASES[case]
    model = build(tok).eval()
    fast, batched = fast_statistics_and_hidden(model, experts, autocast_dtype=autocast)
    single = single_sequence_hidden(model, experts, autocast).float()
    batched = batched.float()
    bound = layout_bound(single, model.config.num_hidden_layers)
    assert ((batched - single).abs() <= bound).all()
    assert not torch.equal(batched, single)  # the layouts really round differently here
    # logits z_v = w_v·h in fp32: |Δz_v| <= Σ_i |w_vi|·|Δh_i|, plus each dot product's own fp32 rounding,
    # at most d·2^-24·Σ_i |w_vi|·|h_i|
    weight = output_weight(model, experts)
    delta_z = (batched @ weight.T - single @ weight.T).abs()
    fp32_rounding = 2 * weight.shape[1] * FP32_UNIT_ROUNDOFF * (single.abs() @ weight.abs().T)
    assert (delta_z <= bound.expand_as(single) @ weight.abs().T + fp32_rounding).all()
    # nll = lse(z) − z_y and margin = z_y − max_{v≠y} z_v move by at most 2·max_v |Δz_v| (lse and max are
    # 1-Lipschitz in the max norm), on top of the fp32 tolerance of a same-layout comparison
    naive = reference_statistics(single, weight, scored_targets(experts))
    moved = 2 * delta_z.amax(1).numpy()
    for column in (0, 8):  # nll, margin
        slack = SAME_LAYOUT_TOLERANCE["atol"] + SAME_LAYOUT_TOLERANCE["rtol"] * np.abs(naive[:, column])
        assert (np.abs(fast[:, column] - naive[:, column]) <= moved + slack).all()


def test_layout_check_catches_misaligned_hidden_states(tok, experts):
    """Hidden states one position off (a wrong gather) break the layout bound by far: the check can fail."""
    build, autocast = BF16_CASES["bf16 weights"]
    model = build(tok).eval()
    _, batched = fast_statistics_and_hidden(model, experts, autocast_dtype=autocast)
    single = single_sequence_hidden(model, experts, autocast).float()
    bound = layout_bound(single[:-1], model.config.num_hidden_layers)
    assert not ((batched[1:].float() - single[:-1]).abs() <= bound).all()


def test_logit_transform_and_single_chunk_equivalence():
    torch.manual_seed(0)
    hidden, weight = torch.randn(50, 16), torch.randn(40, 16)
    targets = torch.randint(0, 40, (50,))
    whole = token_statistics(hidden, weight, None, targets, StatsConfig(chunk_elements=10**9))
    chunked = token_statistics(hidden, weight, None, targets, StatsConfig(chunk_elements=40 * 3, min_chunk_positions=1))
    torch.testing.assert_close(whole, chunked)
    capped = token_statistics(hidden, weight, None, targets, transform=lambda z: torch.tanh(z / 2) * 2)
    log_p = torch.log_softmax(torch.tanh(hidden @ weight.T / 2) * 2, -1)
    torch.testing.assert_close(capped[:, 0], -log_p.gather(1, targets[:, None])[:, 0])


def test_topk_must_include_one():
    with pytest.raises(ValueError, match="including 1"):
        StatsConfig(topk=(5, 10))


def definition_statistics(logits: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Every statistic from its definition in float64 from given logits; −inf logits have p = 0 (0·log 0 = 0)."""
    rows = []
    for z, y in zip(logits.double(), targets.tolist()):
        log_p = torch.log_softmax(z, -1)
        nll = -log_p[y]
        entropy = torch.special.entr(log_p.exp()).sum()
        rank = 1 + int((z > z[y]).sum())
        rows.append([nll, nll.neg().exp(), entropy, rank <= 1, rank <= 5, rank <= 10, np.log(rank), 1 / rank,
                     z[y] - torch.cat([z[:y], z[y + 1:]]).max(), nll - entropy, log_p.exp().max()])
    return np.array([[float(v) for v in row] for row in rows])


def tied_and_masked_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hidden states, an output layer with twelve identical rows (ties), and targets among the tied tokens,
    the argmax and the rest; :func:`mask_padding` sets the last five logits to −inf."""
    torch.manual_seed(0)
    hidden, weight = torch.randn(60, 16), torch.randn(50, 16)
    weight[10:22] = weight[3]
    targets = torch.randint(0, 45, (60,))
    targets[:12] = torch.arange(10, 22)
    targets[12:20] = (hidden[12:20] @ weight.T)[:, :45].argmax(1)
    return hidden, weight, targets


def mask_padding(z: torch.Tensor) -> torch.Tensor:
    return z.index_fill(1, torch.arange(45, 50), -math.inf)


@pytest.mark.parametrize("implementation", ["eager", "fused for torch.compile"])
def test_fused_statistics_equal_the_definitions_with_ties_and_masked_logits(implementation):
    """Both implementations (the eager one in 7-row chunks; the function torch.compile fuses, run eagerly) equal
    the float64 definitions within the fp32 tolerance of the tests above, ties and −inf logits included."""
    hidden, weight, targets = tied_and_masked_case()
    logits = mask_padding(hidden @ weight.T)
    if implementation == "eager":
        seven = StatsConfig(chunk_elements=7 * 50, min_chunk_positions=1)
        fast = token_statistics(hidden, weight, None, targets, seven, mask_padding)
    else:
        fast = token_stats._statistics_pure(logits, targets[:, None], StatsConfig().topk)
    reference = definition_statistics(logits, targets)
    assert np.isfinite(reference).all() and 0 < reference[:, 3].mean() < 1
    assert (reference[:12, 6] > 0).any()  # some tied targets have a larger competitor, so ranks are not trivial
    np.testing.assert_allclose(fast.numpy(), reference, rtol=1e-4, atol=2e-5)


def test_masked_logits_check_catches_nan_entropy(monkeypatch):
    """Without the floor on shifted logits, −inf logits give 0·(−inf) = NaN entropies: the check above fails."""
    monkeypatch.setattr(token_stats, "_FLOOR", -math.inf)
    hidden, weight, targets = tied_and_masked_case()
    fast = token_statistics(hidden, weight, None, targets, transform=mask_padding)
    assert torch.isnan(fast[:, 2]).all()
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(fast.numpy(), definition_statistics(mask_padding(hidden @ weight.T), targets),
                                   rtol=1e-4, atol=2e-5)


def test_compile_failure_falls_back_to_eager(monkeypatch, caplog):
    """A compiler that cannot run (Inductor pointed at a missing C++ compiler, its cache off) costs a warning and
    gives the eager statistics, then eager from there on."""
    import torch._inductor.config as inductor

    monkeypatch.setattr(inductor.cpp, "cxx", ("/nonexistent/c++",))
    monkeypatch.setattr(inductor, "fx_graph_cache", False)
    monkeypatch.setattr(token_stats._Compiler, "function", None)
    monkeypatch.setattr(token_stats._Compiler, "failed", False)
    torch._dynamo.reset()
    hidden, weight, targets = tied_and_masked_case()
    with caplog.at_level(logging.WARNING, logger="evalcast"):
        compiled = token_statistics(hidden, weight, None, targets, StatsConfig(compile=True))
    assert token_stats._Compiler.failed and "torch.compile of the token statistics" in caplog.text
    torch.testing.assert_close(compiled, token_statistics(hidden, weight, None, targets))


def test_chunks_hold_enough_positions_for_the_output_matmul():
    """A chunk is bounded by ``chunk_elements`` but never below ``min_chunk_positions`` positions: a large
    vocabulary must not shrink the matmul to a few rows (it streams the whole output weight per chunk)."""
    config = StatsConfig()
    assert config.chunk_positions(131072) == 256 and config.chunk_positions(262144) == 256
    assert config.chunk_positions(8192) == (1 << 22) // 8192 == 512
    assert StatsConfig(min_chunk_positions=1).chunk_positions(131072) == 32
    with pytest.raises(ValueError, match="min_chunk_positions"):
        StatsConfig(min_chunk_positions=0)
