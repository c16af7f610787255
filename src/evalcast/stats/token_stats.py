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

Two implementations compute the same columns from a chunk's logits ``z`` ``[n, V]``
(``docs/performance.md``): the eager one reuses one work buffer of the chunk's size and makes five
passes over it, all in place or into that buffer (no ``[n, V]`` allocation per chunk): a compare-and-sum
for the rank, a max over the competitors, the shift by the maximum, one exponential, and a
multiply-and-sum giving normaliser and entropy together; with ``StatsConfig(compile=True)``,
``torch.compile`` (Inductor) fuses the same passes into generated kernels, falling back to the eager
implementation (logged once) where compilation fails.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from evalcast.errors import ErrorPolicy
from evalcast.validation import Rule, at_least, check_config

LogitTransform = Callable[[torch.Tensor], torch.Tensor]

#: A shifted logit below this has exp() == 0 in fp32 (underflow below about -103.3); clamping to it keeps
#: e·(z − m) at 0 instead of 0·(−inf) = NaN where logits are −inf (masked or padded tokens).
_FLOOR = -200.0


@dataclass(frozen=True)
class StatsConfig:
    """Which statistics to compute: the top-k cut-offs, the chunk size over positions, eager or compiled."""

    topk: tuple[int, ...] = (1, 5, 10)
    """Cut-offs of the ``top{k}`` statistics; 1 (greedy agreement) must be among them."""
    chunk_elements: int = 1 << 22
    """Bounds one chunk's logits to about this many fp32 values (positions × vocabulary), but see
    ``min_chunk_positions``; the eager statistics keep two buffers of the chunk's size."""
    min_chunk_positions: int = 256
    """Fewest positions per chunk (unless the batch has fewer). Every chunk's output-layer matmul streams
    the whole ``[vocab, d]`` weight from memory, so with few positions per chunk (16 at a 256k vocabulary
    and 4M values) the matmul, not the statistics, becomes the pass's main extra cost; 256 positions cost
    two buffers of 256 MiB at a 128k vocabulary (``docs/performance.md``)."""
    compile: bool = False
    """Fuse the per-chunk statistics with ``torch.compile`` (compiled once per process; falls back to eager
    where it cannot compile). Off by default: on CPU the compilation took 25 s to minutes per process, while
    the eager statistics cost about a fifth of the output-layer matmul (``docs/performance.md``)."""

    def __post_init__(self) -> None:
        check_config(self, topk=Rule("distinct cut-offs >= 1 including 1 (greedy agreement)",
                                     lambda ks: 1 in ks and min(ks) >= 1 and len(set(ks)) == len(ks)),
                     chunk_elements=at_least(1), min_chunk_positions=at_least(1))

    @property
    def names(self) -> tuple[str, ...]:
        return ("nll", "prob", "entropy", *(f"top{k}" for k in self.topk), "log_rank", "recip_rank", "margin",
                "excess_surprisal", "max_prob")

    def chunk_positions(self, vocab: int) -> int:
        return max(self.min_chunk_positions, self.chunk_elements // max(vocab, 1), 1)


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
    n, vocab = hidden.shape[0], weight.shape[0]
    out = torch.empty(n, len(spec.names), dtype=torch.float32, device=hidden.device)
    step = min(spec.chunk_positions(vocab), max(n, 1))
    logits = torch.empty(step, vocab, dtype=torch.float32, device=hidden.device)
    work = None if spec.compile else torch.empty_like(logits)
    bias = None if bias is None else bias[:vocab].float()
    with torch.autocast(hidden.device.type, enabled=False):  # fp32 throughout, whatever the caller autocasts
        for start in range(0, n, step):
            stop = min(start + step, n)
            z = logits[:stop - start]
            if bias is None:
                torch.mm(hidden[start:stop].float(), weight.t(), out=z)
            else:
                torch.addmm(bias, hidden[start:stop].float(), weight.t(), out=z)
            if transform is not None:
                z = transform(z)
            y = targets[start:stop].long().unsqueeze(1)
            compiled = _compiled() if spec.compile else None
            if compiled is not None:
                out[start:stop] = _guarded(compiled, z, y, spec.topk)
            else:
                work = torch.empty_like(logits) if work is None else work
                out[start:stop] = _statistics_eager(z, y, spec.topk, work[:stop - start])
    return out


def _statistics_eager(z: torch.Tensor, y: torch.Tensor, topk: tuple[int, ...], work: torch.Tensor) -> torch.Tensor:
    """The columns from logits ``z`` ``[n, V]`` (overwritten) at targets ``y`` ``[n, 1]``, ``work`` a buffer like z."""
    z_y = z.gather(1, y)
    # rank − 1 = #{v : z_v > z_y}, summed as fp32 ones: exact while V < 2^24 (every partial sum is an integer)
    rank = torch.gt(z, z_y, out=work).sum(1).add_(1.0)
    # best competitor: mask the expert token, take the max, put it back (no sort, no copy)
    z.scatter_(1, y, -math.inf)
    competitor = z.amax(1) if z.shape[1] > 1 else torch.full_like(z_y[:, 0], -math.inf)
    z.scatter_(1, y, z_y)
    z_y = z_y.squeeze(1)
    top = torch.maximum(competitor, z_y)
    # One shifted exponential serves logsumexp and entropy: with e = exp(z − m), s = Σ e and
    # t = Σ e·(z − m): lse = m + log s and H = lse − Σ p z = log s − t / s.
    shifted = z.sub_(top.unsqueeze(1)).clamp_(min=_FLOOR)
    e = torch.exp(shifted, out=work)
    total = e.sum(1)
    dot = e.mul_(shifted).sum(1)
    return _columns(z_y, rank, competitor, total, dot, topk)


def _statistics_pure(z: torch.Tensor, y: torch.Tensor, topk: tuple[int, ...]) -> torch.Tensor:
    """:func:`_statistics_eager` without in-place writes, written for Inductor to fuse."""
    z_y = z.gather(1, y)
    rank = torch.gt(z, z_y).to(torch.float32).sum(1) + 1.0
    columns = torch.arange(z.shape[1], device=z.device).unsqueeze(0)
    competitor = torch.where(columns == y, -math.inf, z).amax(1)
    z_y = z_y.squeeze(1)
    top = torch.maximum(competitor, z_y)
    shifted = (z - top.unsqueeze(1)).clamp(min=_FLOOR)
    e = torch.exp(shifted)
    return _columns(z_y, rank, competitor, e.sum(1), (e * shifted).sum(1), topk)


def _columns(z_y: torch.Tensor, rank: torch.Tensor, competitor: torch.Tensor, total: torch.Tensor,
             dot: torch.Tensor, topk: tuple[int, ...]) -> torch.Tensor:
    top = torch.maximum(competitor, z_y)
    log_total = torch.log(total)
    entropy = log_total - dot / total
    nll = top + log_total - z_y
    columns = [nll, torch.exp(-nll), entropy, *((rank <= k).float() for k in topk), torch.log(rank), 1.0 / rank,
               z_y - competitor, nll - entropy, torch.exp(-log_total)]
    return torch.stack(columns, dim=1)


class _Compiler:
    """The compiled statistics, built on first use; ``failed`` once compiling or running it raised."""

    function: Callable[..., torch.Tensor] | None = None
    failed = False


def _compiled() -> Callable[..., torch.Tensor] | None:
    if _Compiler.failed:
        return None
    if _Compiler.function is None:
        _Compiler.function = torch.compile(_statistics_pure, dynamic=True)
    return _Compiler.function


def _guarded(compiled: Callable[..., torch.Tensor], z: torch.Tensor, y: torch.Tensor,
             topk: tuple[int, ...]) -> torch.Tensor:
    """The compiled statistics, or the eager ones (and eager from then on) when compilation fails."""
    with ErrorPolicy().guard("torch.compile of the token statistics (falling back to eager)", reraise=False,
                             level=logging.WARNING) as failure:
        return compiled(z, y, topk)
    _Compiler.failed = True
    assert failure
    return _statistics_eager(z, y, topk, torch.empty_like(z))
