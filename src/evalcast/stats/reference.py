"""Reference-model weightings, frozen once with a fixed reference model.

A reference model (a small external model, the teacher that wrote the traces, or the run's first
anchor checkpoint) scores every expert token once; its entropy and NLL per token become weightings
``ref_entropy``, ``forking`` (top-20% entropy: the "forking tokens") and ``ref_nll``. They never move
with the checkpoint being scored, so metrics keep one definition across the run. The expert set's
fingerprint changes with them (a run directory refuses a set scored with another reference); after a
restart, score the expert set with the same reference again (one forward pass).
"""

from __future__ import annotations

import hashlib

from torch import nn

from evalcast.data.expert_set import ExpertSet
from evalcast.data.weights import reference_weights
from evalcast.stats.forward import StatsTap, run_forward
from evalcast.stats.head import check_compatible, unwrap
from evalcast.stats.isolation import isolated
from evalcast.stats.token_stats import StatsConfig


def add_reference_weights(experts: ExpertSet, model: nn.Module, name: str, *, max_tokens: int = 16384,
                          progress: bool = False) -> ExpertSet:
    """Score ``experts`` with the reference ``model`` and add the three reference weightings in place.

    ``name`` identifies the reference (it enters the expert set's fingerprint, so two references never
    share a cache entry or a run directory).
    """
    model = unwrap(model)
    head = check_compatible(model, vocab_size=experts.vocab_size, longest=int(experts.table.lengths.max()))
    spec = StatsConfig()
    device = next(model.parameters()).device
    tap = StatsTap(experts, head, spec, device, keep_per_token=True)
    with isolated(model):
        run_forward(model, experts, experts.batches(max_tokens=max_tokens), tap, device=device, progress=progress)
    assert tap.per_token is not None
    per_token = tap.per_token.cpu().numpy()
    experts.table.weights.update(reference_weights(per_token[:, spec.names.index("entropy")],
                                                   per_token[:, spec.names.index("nll")]))
    experts.fingerprint = hashlib.sha256(f"{experts.fingerprint}:reference:{name}".encode()).hexdigest()
    return experts
