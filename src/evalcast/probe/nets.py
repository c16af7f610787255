"""P2 MLP and P3 attention-pooling probes in torch, trained on pass@1 as a binomial likelihood.

Initialisation, shuffling and dropout draw from a private ``torch.Generator`` (modules are built on
the meta device and initialised from it), so training never moves the global torch RNG that the
training job relies on. Training stops early on a validation fold of training questions and keeps
the best weights; that fold's logits are what the calibrator is fitted on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evalcast.probe.config import NetConfig
from evalcast.probe.persist import decode_array, encode_array

Inputs = np.ndarray | Sequence[np.ndarray]
_CHUNK = 256


class MLP(nn.Module):
    """d' → hidden → 1 with GELU and dropout (drawn from the generator passed to ``forward``)."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.inner = nn.Linear(dim, hidden, device="meta")
        self.outer = nn.Linear(hidden, 1, device="meta")
        self.dropout = dropout

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        h = F.gelu(self.inner(x))
        if generator is not None and self.dropout > 0:
            keep = torch.rand(h.shape, generator=generator) >= self.dropout
            h = h * keep / (1.0 - self.dropout)
        return self.outer(h).squeeze(-1)


class AttentionPool(nn.Module):
    """One learned query per head, softmax over the prompt positions with padding masked, linear head."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.empty(heads, dim, device="meta"))
        self.head = nn.Linear(heads * dim, 1, device="meta")

    def forward(self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        scores = torch.einsum("bld,hd->bhl", x, self.query)
        weights = scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(dim=-1)
        pooled = torch.einsum("bhl,bld->bhd", weights, x)
        return self.head(pooled.flatten(1)).squeeze(-1)


def _build(kind: str, dim: int, cfg: NetConfig) -> nn.Module:
    return MLP(dim, cfg.hidden, cfg.dropout) if kind == "mlp" else AttentionPool(dim, cfg.heads)


def _initialise(net: nn.Module, generator: torch.Generator) -> nn.Module:
    """Materialise a meta-device module: U(±1/√fan_in) for linear layers, zero queries (mean pooling)."""
    net.to_empty(device="cpu")
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.in_features)
                nn.init.uniform_(module.weight, -bound, bound, generator=generator)
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif isinstance(module, AttentionPool):
                module.query.zero_()
    return net


def _take(kind: str, x: Inputs, index: np.ndarray) -> Inputs:
    return np.asarray(x)[index] if kind == "mlp" else [x[i] for i in index]


def _batch(kind: str, x: Inputs, index: np.ndarray) -> tuple[torch.Tensor, ...]:
    """Model inputs for rows ``index``: a float32 matrix, or token arrays right-padded with their mask."""
    if kind == "mlp":
        return (torch.as_tensor(np.asarray(x)[index], dtype=torch.float32),)
    rows = [x[i] for i in index]
    length = max(len(r) for r in rows)
    padded = np.zeros((len(rows), length, rows[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(rows), length), dtype=bool)
    for b, r in enumerate(rows):
        padded[b, :len(r)], mask[b, :len(r)] = r, True
    return torch.from_numpy(padded), torch.from_numpy(mask)


@dataclass
class NetProbe:
    """A trained torch probe (``mlp`` or ``attention``) and what is needed to rebuild it."""

    kind: str
    dim: int
    net: nn.Module

    def logits(self, x: Inputs) -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, len(x), _CHUNK):
                out.append(self.net(*_batch(self.kind, x, np.arange(start, min(start + _CHUNK, len(x))))))
        return torch.cat(out).double().numpy() if out else np.zeros(0)

    def to_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "dim": self.dim,
                "weights": {k: encode_array(v.numpy()) for k, v in self.net.state_dict().items()}}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], config: NetConfig) -> NetProbe:
        net = _build(state["kind"], int(state["dim"]), config).to_empty(device="cpu")
        net.load_state_dict({k: torch.from_numpy(decode_array(v)) for k, v in state["weights"].items()})
        return cls(state["kind"], int(state["dim"]), net)


def _loss(logits: torch.Tensor, n: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Binomial negative log-likelihood per sample (BCE on c/n weighted by n)."""
    return F.binary_cross_entropy_with_logits(logits, c / n, weight=n, reduction="sum") / n.sum()


def fit_net(kind: str, x: Inputs, n: np.ndarray, c: np.ndarray, folds: np.ndarray, cfg: NetConfig,
            seed: int) -> tuple[NetProbe, np.ndarray, np.ndarray]:
    """Train on every fold but 0, stop early on fold 0; returns the probe, fold 0's rows and their logits."""
    generator = torch.Generator().manual_seed(seed)
    dim = int(np.asarray(x).shape[1]) if kind == "mlp" else int(x[0].shape[1])
    probe = NetProbe(kind, dim, _initialise(_build(kind, dim, cfg), generator))
    train, val = np.flatnonzero(folds != 0), np.flatnonzero(folds == 0)
    n_t, c_t = torch.as_tensor(n, dtype=torch.float32), torch.as_tensor(c, dtype=torch.float32)
    optimizer = torch.optim.AdamW(probe.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, stale = math.inf, 0
    best_state = {k: v.detach().clone() for k, v in probe.net.state_dict().items()}
    for _ in range(cfg.max_epochs):
        order = train[torch.randperm(len(train), generator=generator).numpy()]
        for start in range(0, len(order), cfg.batch_size):
            rows = order[start:start + cfg.batch_size]
            loss = _loss(probe.net(*_batch(kind, x, rows), generator=generator), n_t[rows], c_t[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        val_loss = float(_loss(torch.from_numpy(probe.logits(_take(kind, x, val))).float(), n_t[val], c_t[val]))
        if val_loss < best - 1e-6:
            best, stale = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in probe.net.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    probe.net.load_state_dict(best_state)
    return probe, val, probe.logits(_take(kind, x, val))
