"""Token-level statistics of the next-token distribution at expert tokens (``docs/methods.md`` §1).

Logits are formed chunk by chunk over positions in fp32 from the final hidden states and the output
layer, so a ``[positions, vocab]`` fp32 tensor exists for one chunk only; ranks are counts of larger
logits (no sort). Every statistic is reported raw; the aggregation decides the direction later.

=====================  ==========================================================
column                 value at an expert token y with logits z
=====================  ==========================================================
``nll``                logsumexp(z) − z_y
``prob``               p(y) = exp(−nll)
``entropy``            −Σ p log p of the whole distribution (nats)
``top{k}``             1 if rank ≤ k
``log_rank``           log rank, rank = 1 + #{v : z_v > z_y}
``recip_rank``         1 / rank
``margin``             z_y − max_{v ≠ y} z_v (> 0 iff the expert token is the unique argmax)
``excess_surprisal``   nll − entropy
``max_prob``           probability of the most likely token (confidence)
=====================  ==========================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from evalcast.validation import Rule, at_least, check_config

LogitTransform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class StatsConfig:
    """Which statistics to compute: the top-k cut-offs and the chunk size over positions."""

    topk: tuple[int, ...] = (1, 5, 10)
    """Cut-offs of the ``top{k}`` statistics; 1 (greedy agreement) must be among them."""
    chunk_elements: int = 1 << 22
    """Bounds one chunk's logits to about this many fp32 values (positions × vocabulary)."""

    def __post_init__(self) -> None:
        check_config(self, topk=Rule("distinct cut-offs >= 1 including 1 (greedy agreement)",
                                     lambda ks: 1 in ks and min(ks) >= 1 and len(set(ks)) == len(ks)),
                     chunk_elements=at_least(1))

    @property
    def names(self) -> tuple[str, ...]:
        return ("nll", "prob", "entropy", *(f"top{k}" for k in self.topk), "log_rank", "recip_rank", "margin",
                "excess_surprisal", "max_prob")

    def chunk_positions(self, vocab: int) -> int:
        return max(1, self.chunk_elements // max(vocab, 1))


def fp32_weight(weight: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """The output layer's first ``vocab_size`` rows in fp32 (a view when already fp32).

    Rows beyond the tokenizer's vocabulary are padding: dropping them is exact masking.
    """
    return weight[:vocab_size].float()


def token_statistics(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
                     spec: StatsConfig = StatsConfig(), transform: LogitTransform | None = None) -> torch.Tensor:
    """Statistics for each row of ``hidden`` ``[n, d]`` at its ``targets`` ``[n]``: ``[n, len(spec.names)]`` fp32.

    ``weight`` ``[V, d]`` must already be restricted to the real vocabulary (see :func:`fp32_weight`).
    """
    out = torch.empty(hidden.shape[0], len(spec.names), dtype=torch.float32, device=hidden.device)
    step = spec.chunk_positions(weight.shape[0])
    with torch.autocast(hidden.device.type, enabled=False):  # fp32 throughout, whatever the caller autocasts
        for start in range(0, hidden.shape[0], step):
            stop = min(start + step, hidden.shape[0])
            out[start:stop] = _chunk_statistics(hidden[start:stop], weight, bias, targets[start:stop], spec,
                                                transform)
    return out


def _chunk_statistics(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
                      spec: StatsConfig, transform: LogitTransform | None) -> torch.Tensor:
    z = F.linear(hidden.float(), weight, None if bias is None else bias[:weight.shape[0]].float())
    if transform is not None:
        z = transform(z)
    y = targets.long().unsqueeze(1)
    z_y = z.gather(1, y)
    # int32 accumulation: summing the bool mask as int64 is several times slower on CPU
    rank = 1.0 + torch.gt(z, z_y).sum(1, dtype=torch.int32).float()
    # best competitor: mask the expert token, take the max, put it back (no sort, no copy)
    z.scatter_(1, y, -math.inf)
    competitor = z.max(1).values if z.shape[1] > 1 else torch.full_like(z_y[:, 0], -math.inf)
    z.scatter_(1, y, z_y)
    z_y = z_y.squeeze(1)
    top = torch.maximum(competitor, z_y).unsqueeze(1)
    # One shifted exponential serves logsumexp and entropy: with e = exp(z − m), s = Σ e and
    # t = Σ e·(z − m): lse = m + log s and H = lse − Σ p z = log s − t / s.
    shifted = z.sub_(top)  # in place: z is not needed any more
    e = shifted.exp()
    total = e.sum(1)
    dot = torch.bmm(e.unsqueeze(1), shifted.unsqueeze(2)).view(-1)
    del e, shifted
    log_total = torch.log(total)
    lse = top.squeeze(1) + log_total
    entropy = log_total - dot / total
    nll = lse - z_y
    columns = [nll, torch.exp(-nll), entropy, *((rank <= k).float() for k in spec.topk), torch.log(rank),
               1.0 / rank, z_y - competitor, nll - entropy, torch.exp(-log_total)]
    return torch.stack(columns, dim=1)
