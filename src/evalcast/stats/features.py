"""Hidden-state features for the probe, read in the same forward pass as the token statistics.

Forward hooks on a few decoder blocks (default ⌊L/2⌋, ⌊3L/4⌋, L−1) pool each probe question's hidden
states over its *prompt* tokens only — the causal model has not seen the solution there yet, so these
are exactly the prefill activations generation would start from. Never ``output_hidden_states=True``
(all L+1 layers kept alive), never a second pass. Pooled per question and layer:

* ``last``: the hidden state at the last prompt token (the probe's default input);
* ``mean``: the mean over the prompt tokens;
* ``tokens`` (optional, for attention-pooling probes): every prompt token's hidden state after a fixed
  random projection to ``project_dim`` dimensions, stored as float16.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from evalcast.stats.forward import BatchContext


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks: the longest ``nn.ModuleList`` in the model (``model.layers``, ``transformer.h``)."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if not lists:
        raise ValueError(f"{type(model).__name__} has no nn.ModuleList of decoder blocks to read features from")
    return max(lists, key=len)


def default_layers(n_blocks: int) -> tuple[int, ...]:
    return tuple(sorted({n_blocks // 2, (3 * n_blocks) // 4, n_blocks - 1}))


@dataclass
class CheckpointFeatures:
    """Pooled prompt features of the probe questions at one checkpoint.

    ``last`` and ``mean`` are ``[n_questions, n_layers, d]`` float32; ``tokens`` (if captured) holds one
    ``[prompt_len, project_dim]`` float16 array per question. ``proxies`` ``[n_questions, k]`` are the
    question's own teacher-forced statistics at this checkpoint (``proxy_names``: mean NLL, top-1 share
    ... of its expert solution): in natural units, they carry the checkpoint's overall level, which
    per-checkpoint normalised hidden states cannot.
    """

    ids: list[str]
    layers: tuple[int, ...]
    last: np.ndarray
    mean: np.ndarray
    tokens: list[np.ndarray] | None = None
    proxies: np.ndarray | None = None
    proxy_names: tuple[str, ...] = ()

    def subset(self, ids: Sequence[str]) -> CheckpointFeatures:
        where = {q: i for i, q in enumerate(self.ids)}
        index = [where[q] for q in ids]
        return CheckpointFeatures(list(ids), self.layers, self.last[index], self.mean[index],
                                  None if self.tokens is None else [self.tokens[i] for i in index],
                                  None if self.proxies is None else self.proxies[index], self.proxy_names)


@dataclass
class FeatureTap:
    """Captures :class:`CheckpointFeatures` for the expert sequences ``rows`` (probe questions) during the pass.

    rows: table sequence index of every probe question; layers: block indices (default: three layers).
    """

    rows: np.ndarray
    layers: tuple[int, ...] | None = None
    capture_tokens: bool = False
    project_dim: int = 256
    error: BaseException | None = None
    _slot: dict[int, int] = field(default_factory=dict)

    def attach(self, model: nn.Module) -> list[RemovableHandle]:
        blocks = decoder_blocks(model)
        self.layers = self.layers or default_layers(len(blocks))
        if max(self.layers) >= len(blocks) or min(self.layers) < -len(blocks):
            raise ValueError(f"probe layers {self.layers} outside the model's {len(blocks)} blocks")
        self._slot = {int(seq): k for k, seq in enumerate(self.rows)}
        self._last: dict[int, np.ndarray] = {}
        self._mean: dict[int, np.ndarray] = {}
        self._tokens: dict[int, np.ndarray] = {}
        self._projection: torch.Tensor | None = None
        self._batch: list[tuple[int, int, int]] = []
        return [blocks[layer].register_forward_hook(self._hook_for(j)) for j, layer in enumerate(self.layers)]

    def start_batch(self, ctx: BatchContext) -> None:
        """Which rows of the batch are probe questions, and where their prompts end."""
        self._batch = [(b, self._slot[int(seq)], int(ctx.prompt_last[b])) for b, seq in enumerate(ctx.plan.rows)
                       if seq >= 0 and int(seq) in self._slot]

    def _hook_for(self, j: int):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            try:
                if self._batch and self.error is None:
                    hidden = output[0] if isinstance(output, (tuple, list)) else output
                    self._capture(j, hidden)
            except BaseException as exc:
                self.error = exc
        return hook

    def _capture(self, j: int, hidden: torch.Tensor) -> None:
        n_layers = len(self.layers or ())
        for b, slot, last in self._batch:
            prompt = hidden[b, :last + 1].float()
            if slot not in self._last:
                d = prompt.shape[-1]
                self._last[slot] = np.zeros((n_layers, d), np.float32)
                self._mean[slot] = np.zeros((n_layers, d), np.float32)
            self._last[slot][j] = prompt[-1].cpu().numpy()
            self._mean[slot][j] = prompt.mean(0).cpu().numpy()
            if self.capture_tokens and j == n_layers - 1:
                self._tokens[slot] = (prompt @ self._project(prompt)).to(torch.float16).cpu().numpy()

    def _project(self, prompt: torch.Tensor) -> torch.Tensor:
        """A fixed Gaussian projection (seed 0): the same at every checkpoint and on every rank."""
        d = prompt.shape[-1]
        if self._projection is None or self._projection.device != prompt.device:
            if d <= self.project_dim:
                self._projection = torch.eye(d, device=prompt.device)
            else:
                generator = torch.Generator().manual_seed(0)
                matrix = torch.randn(d, self.project_dim, generator=generator) / self.project_dim ** 0.5
                self._projection = matrix.to(prompt.device)
        return self._projection

    def collect(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray] | None]:
        """This rank's captured slots (positions in ``rows``) and their features."""
        slots = np.array(sorted(self._last), dtype=np.int64)
        last = np.stack([self._last[s] for s in slots]) if len(slots) else np.zeros((0, 0, 0), np.float32)
        mean = np.stack([self._mean[s] for s in slots]) if len(slots) else np.zeros((0, 0, 0), np.float32)
        tokens = [self._tokens[s] for s in slots] if self.capture_tokens else None
        return slots, last, mean, tokens
