"""Token statistics against a naive full-softmax reference, on random GPT-2 and Llama models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evalcast.stats import StatsConfig, StatsTap, check_compatible, run_forward
from evalcast.stats.token_stats import token_statistics
from evalcast.toy import tiny_gpt2, tiny_llama


def naive_statistics(model, experts, autocast_dtype=None) -> np.ndarray:
    """Full-vocabulary log-softmax per position, one sequence at a time, straight from the definitions."""
    table, vocab = experts.table, experts.vocab_size
    weight = model.get_output_embeddings().weight[:vocab].float()
    rows = []
    with torch.no_grad():
        for i in range(table.n_seq):
            ids = torch.as_tensor(table.sequence(i), dtype=torch.long)[None]
            with torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast_dtype is not None):
                hidden = model(ids, output_hidden_states=True).hidden_states[-1][0]
            logits = hidden.float() @ weight.T
            for t in range(int(table.solution_start[i]), ids.shape[1]):
                z, y = logits[t - 1], int(ids[0, t])
                log_p = torch.log_softmax(z, -1)
                nll = -log_p[y]
                entropy = -(log_p.exp() * log_p).sum()
                rank = 1 + int((z > z[y]).sum())
                others = torch.cat([z[:y], z[y + 1:]])
                rows.append([nll, nll.neg().exp(), entropy, rank <= 1, rank <= 5, rank <= 10, np.log(rank), 1 / rank,
                             z[y] - others.max(), nll - entropy, log_p.exp().max()])
    return np.array([[float(v) for v in row] for row in rows])


def fast_statistics(model, experts, spec=StatsConfig(), autocast_dtype=None) -> np.ndarray:
    head = check_compatible(model, vocab_size=experts.vocab_size, longest=int(experts.table.lengths.max()))
    tap = StatsTap(experts, head, spec, torch.device("cpu"), keep_per_token=True)
    with torch.no_grad():
        run_forward(model, experts, experts.batches(max_tokens=96, pad_multiple=8), tap, device=torch.device("cpu"),
                    autocast_dtype=autocast_dtype)
    return tap.per_token.cpu().numpy()


@pytest.mark.parametrize("build", [
    lambda tok: tiny_gpt2(tok, n_embd=32),
    lambda tok: tiny_gpt2(tok, n_embd=32, vocab_size=len(tok) + 13),  # padded vocabulary
    lambda tok: tiny_llama(tok, hidden=32),  # untied output layer, RMSNorm, RoPE, GQA
])
def test_matches_naive_reference(tok, experts, build):
    model = build(tok).eval()
    with torch.no_grad():  # sharpen the distribution so ranks and top-k are not all trivial
        model.get_output_embeddings().weight.mul_(8)
    fast = fast_statistics(model, experts, StatsConfig(chunk_elements=7 * len(tok)))  # 7 positions per chunk
    np.testing.assert_allclose(fast, naive_statistics(model, experts), rtol=1e-4, atol=2e-5)
    assert 0 < fast[:, 3].mean() < 1  # top-1 neither always nor never


def test_ties_count_only_strictly_larger_logits(tok, experts):
    model = tiny_gpt2(tok, n_embd=32).eval()
    with torch.no_grad():
        weight = model.get_output_embeddings().weight
        weight[10:30] = weight[3]  # twenty tokens with identical logits everywhere
    fast = fast_statistics(model, experts)
    np.testing.assert_allclose(fast, naive_statistics(model, experts), rtol=1e-4, atol=2e-5)


def test_bf16_autocast_statistics_are_fp32_from_the_bf16_hidden_states(tok, experts):
    model = tiny_llama(tok, hidden=32).eval()
    fast = fast_statistics(model, experts, autocast_dtype=torch.bfloat16)
    np.testing.assert_allclose(fast, naive_statistics(model, experts, torch.bfloat16), rtol=1e-3, atol=1e-4)
    plain = fast_statistics(model, experts)
    assert not np.allclose(fast[:, 0], plain[:, 0], atol=1e-6)  # autocast really changed the hidden states


def test_bf16_weights(tok, experts):
    model = tiny_gpt2(tok, n_embd=32).to(torch.bfloat16).eval()
    fast = fast_statistics(model, experts)
    reference = naive_statistics(model, experts)
    np.testing.assert_allclose(fast, reference, rtol=1e-3, atol=1e-4)


def test_logit_transform_and_single_chunk_equivalence():
    torch.manual_seed(0)
    hidden, weight = torch.randn(50, 16), torch.randn(40, 16)
    targets = torch.randint(0, 40, (50,))
    whole = token_statistics(hidden, weight, None, targets, StatsConfig(chunk_elements=10**9))
    chunked = token_statistics(hidden, weight, None, targets, StatsConfig(chunk_elements=40 * 3))
    torch.testing.assert_close(whole, chunked)
    capped = token_statistics(hidden, weight, None, targets, transform=lambda z: torch.tanh(z / 2) * 2)
    log_p = torch.log_softmax(torch.tanh(hidden @ weight.T / 2) * 2, -1)
    torch.testing.assert_close(capped[:, 0], -log_p.gather(1, targets[:, None])[:, 0])


def test_topk_must_include_one():
    with pytest.raises(ValueError, match="including 1"):
        StatsConfig(topk=(5, 10))
