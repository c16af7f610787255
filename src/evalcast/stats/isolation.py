"""Leave the training run exactly as it was: modes, RNG streams, autograd (the "invisible to training" guarantee).

Inside :func:`isolated` the model is in eval mode under ``torch.no_grad()`` (not ``inference_mode``:
FSDP would otherwise create inference tensors for parameters it unshards and training would fail
later). On exit every module's own ``training`` flag is put back (frozen sub-modules stay in their
mode), the python, numpy, torch CPU and CUDA RNG states are restored, so sampling during an anchor
evaluation cannot shift the data order or dropout of the run, and FSDP2 modules are resharded. Nothing
here touches gradients, the optimizer, ``requires_grad``, ``config.use_cache`` or gradient
checkpointing; tests check all of them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass
class RngState:
    """Every global random stream a training loop may draw from."""

    python: Any
    numpy: Any
    torch_cpu: torch.Tensor
    cuda: list[torch.Tensor] | None

    @classmethod
    def capture(cls) -> RngState:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        return cls(random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda)

    def restore(self) -> None:
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch_cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


@contextmanager
def isolated(model: nn.Module) -> Iterator[None]:
    """Run evaluation code on a live model and undo every side effect evalcast could have."""
    modes = [(module, module.training) for module in model.modules()]
    rng = RngState.capture()
    try:
        model.eval()
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training
        rng.restore()
        _reshard(model)


def _reshard(model: nn.Module) -> None:
    """FSDP2 leaves the root's parameters unsharded after a forward (for the backward it expects); a
    forward without backward would leave them so, holding the full tensors: shard them again."""
    for module in model.modules():
        reshard = getattr(module, "reshard", None)
        if callable(reshard) and type(module).__name__.startswith("FSDP"):
            reshard()
