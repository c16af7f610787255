"""Probe features come from the same pass and equal the prefill activations of the prompt alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evalcast.data import EXPERT
from evalcast.stats import StatsConfig, StatsTap, check_compatible, run_forward
from evalcast.stats.features import FeatureTap, decoder_blocks, default_layers
from evalcast.toy import tiny_gpt2, tiny_llama


def prefill_reference(model, ids: list[int], layers) -> tuple[np.ndarray, np.ndarray]:
    outputs = {}
    blocks = decoder_blocks(model)
    def keep(layer):
        return lambda module, args, out: outputs.__setitem__(layer, out[0] if isinstance(out, tuple) else out)

    handles = [blocks[layer].register_forward_hook(keep(layer)) for layer in layers]
    with torch.no_grad():
        model(torch.tensor([ids]))
    for h in handles:
        h.remove()
    last = np.stack([outputs[layer][0, -1].numpy() for layer in layers])
    mean = np.stack([outputs[layer][0].mean(0).numpy() for layer in layers])
    return last, mean


@pytest.mark.parametrize("build", [lambda tok: tiny_gpt2(tok, n_layer=4, n_embd=32),
                                   lambda tok: tiny_llama(tok, n_layer=4, hidden=32)])
def test_features_equal_prompt_prefill(tok, experts, build):
    model = build(tok).eval()
    table = experts.table
    rows = np.flatnonzero(table.kind == EXPERT)[::3]
    tap = FeatureTap(rows=rows, capture_tokens=True, project_dim=16)
    head = check_compatible(model, vocab_size=experts.vocab_size, longest=int(table.lengths.max()))
    stats = StatsTap(experts, head, StatsConfig(), torch.device("cpu"))
    with torch.no_grad():
        run_forward(model, experts, experts.batches(max_tokens=128, pad_multiple=8), stats, [tap],
                    device=torch.device("cpu"))
    slots, last, mean, tokens = tap.collect()
    assert tap.layers == default_layers(4) == (2, 3)
    assert list(slots) == list(range(len(rows)))
    for slot, seq in enumerate(rows):
        prompt = list(table.sequence(seq)[:table.solution_start[seq]])
        ref_last, ref_mean = prefill_reference(model, prompt, tap.layers)
        np.testing.assert_allclose(last[slot], ref_last, atol=1e-5)
        np.testing.assert_allclose(mean[slot], ref_mean, atol=1e-5)
        assert tokens[slot].shape == (len(prompt), 16) and tokens[slot].dtype == np.float16


def test_model_without_blocks_is_refused():
    with pytest.raises(ValueError, match=r"no nn\.ModuleList"):
        decoder_blocks(torch.nn.Linear(2, 2))
