"""Find the output layer of a causal LM and what the model does to its logits afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from evalcast.stats.token_stats import LogitTransform


class ModelMismatchError(ValueError):
    """The model cannot score this expert set (no output layer, vocabulary too small, too short context)."""


_WRAPPERS = {"DistributedDataParallel": "module", "DataParallel": "module", "DeepSpeedEngine": "module",
             "OptimizedModule": "_orig_mod"}


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DDP / DataParallel / DeepSpeed / torch.compile wrappers.

    FSDP modules are kept: their own forward gathers the sharded parameters.
    """
    while type(model).__name__ in _WRAPPERS:
        model = getattr(model, _WRAPPERS[type(model).__name__])
    return model


@dataclass(frozen=True)
class OutputHead:
    """The output projection and the post-processing the model applies to its logits."""

    module: nn.Module
    rows: int
    transform: LogitTransform | None


def resolve_output_head(model: nn.Module) -> OutputHead:
    """The module that maps final hidden states to logits (``get_output_embeddings()``)."""
    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    if not isinstance(head, nn.Module) or getattr(head, "weight", None) is None:
        raise ModelMismatchError(
            f"{type(model).__name__} has no output layer: get_output_embeddings() returned {head!r}. evalcast needs a "
            "causal LM whose forward applies its output layer to the final hidden states (an *ForCausalLM model); "
            "pass the language model, not its base model or a classification head.")
    rows = int(head.weight.shape[0]) if head.weight.dim() == 2 else int(getattr(head, "out_features", 0))
    return OutputHead(module=head, rows=rows, transform=_logit_transform(getattr(model, "config", None)))


def _logit_transform(config: Any) -> LogitTransform | None:
    """Scaling and soft-capping that some families apply after the output layer (Cohere, Gemma 2/3)."""
    scale = getattr(config, "logit_scale", None)
    cap = getattr(config, "final_logit_softcapping", None)
    if not scale and not cap:
        return None

    def transform(z: torch.Tensor) -> torch.Tensor:
        if scale:
            z = z * float(scale)
        if cap:
            z = torch.tanh(z / float(cap)) * float(cap)
        return z

    return transform


def max_positions(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_compatible(model: nn.Module, *, vocab_size: int, longest: int) -> OutputHead:
    """Fail early, with the reason, when the expert set's tokens do not fit the model."""
    head = resolve_output_head(model)
    if vocab_size > head.rows:
        raise ModelMismatchError(
            f"the expert set's tokenizer has {vocab_size} token ids but the model's output layer has only "
            f"{head.rows} rows: the expert set was tokenized with a different tokenizer than this model's. "
            "Build the ExpertSet with the model's own tokenizer.")
    limit = max_positions(model)
    if limit is not None and longest > limit:
        raise ModelMismatchError(
            f"the longest expert sequence has {longest} tokens but the model accepts {limit} positions; "
            f"build the ExpertSet with TokenizeConfig(max_length={limit}).")
    return head
