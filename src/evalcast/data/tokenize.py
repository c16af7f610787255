"""Tokenize prompt + solution once, with the split between prompt and solution tokens.

The full text ``render_prompt(prompt) + solution`` is tokenized in one call with the tokenizer's own
special-token policy (BOS where the model expects one), so the solution tokens are exactly those the
model would see in context. Character offsets place the split: the first token that holds a solution
character starts the solution. EOS is appended as the final scored token when the tokenizer has one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from evalcast.data.formatting import PromptConfig, render_prompt
from evalcast.validation import at_least, check_config

Overlong = Literal["truncate", "skip", "error"]


@dataclass(frozen=True)
class TokenizeConfig:
    """How expert trajectories become token ids: ``ExpertSet(..., config=TokenizeConfig(...))``."""

    prompt_format: PromptConfig = PromptConfig()
    """How the prompt is rendered before the solution."""
    max_length: int | None = None
    """Longest sequence (prompt + solution + EOS) in tokens; None uses the tokenizer's ``model_max_length``
    when it is a real limit, else 2048."""
    overlong: Overlong = "truncate"
    """``truncate`` cuts the solution's tail (the prompt is kept whole), ``skip`` drops the row, ``error``
    raises. Counts are reported by :class:`~evalcast.data.ExpertSet`."""
    score_eos: bool = True
    """Append EOS after the solution and score it (the model should know when to stop)."""
    choice_delimiter: str = " "
    """Multiple-choice rows: each choice is scored as the continuation ``choice_delimiter + choice`` of the
    prompt as written (lm-eval's ``target_delimiter``; no prompt separator, no EOS)."""

    def __post_init__(self) -> None:
        check_config(self, max_length=at_least(2))

    def key(self, max_length: int) -> dict[str, Any]:
        return {"format": self.prompt_format.key(), "max_length": max_length, "overlong": self.overlong,
                "score_eos": self.score_eos}


@dataclass(frozen=True)
class Tokenized:
    """One tokenized sequence: ids, index of the first solution token, answer-span flags per id."""

    ids: list[int]
    solution_start: int
    answer_mask: list[bool]
    n_bytes: int
    truncated: bool


class OverlongError(ValueError):
    """A trajectory does not fit ``max_length`` and ``overlong="error"`` was asked for."""


def resolve_max_length(tokenizer: Any, config: TokenizeConfig) -> int:
    if config.max_length is not None:
        return int(config.max_length)
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else 2048


def tokenize_pair(tokenizer: Any, prompt: str, solution: str, answer: str | None,
                  config: TokenizeConfig, max_length: int) -> Tokenized | None:
    """Tokenize one (prompt, solution); ``None`` when the row must be skipped as overlong."""
    prompt_text = render_prompt(prompt, tokenizer, config.prompt_format)
    text = prompt_text + solution
    add_special = not config.prompt_format.chat_template
    ids, starts, ends = _encode_with_offsets(tokenizer, text, prompt_text, add_special)
    boundary = len(prompt_text)
    solution_start = next((i for i, end in enumerate(ends) if end > boundary and ends[i] > starts[i]), len(ids))
    solution_start = max(solution_start, 1)  # the first token has no prediction: it is always context
    if solution_start >= len(ids):
        raise ValueError("the solution produced no tokens of its own")
    answer_span = _answer_span(solution, answer, boundary)
    answer_mask = [answer_span is not None and s < answer_span[1] and e > answer_span[0]
                   for s, e in zip(starts, ends)]
    eos = getattr(tokenizer, "eos_token_id", None)
    if config.score_eos and eos is not None:
        ids.append(int(eos))
        answer_mask.append(False)
    truncated = False
    if len(ids) > max_length:
        if config.overlong == "error":
            raise OverlongError(f"{len(ids)} tokens > max_length={max_length}")
        if config.overlong == "skip" or solution_start + 1 > max_length:
            return None
        ids, answer_mask, truncated = ids[:max_length], answer_mask[:max_length], True
    return Tokenized(ids=ids, solution_start=solution_start, answer_mask=answer_mask,
                     n_bytes=len(solution.encode("utf-8")), truncated=truncated)


def _encode_with_offsets(tokenizer: Any, text: str, prompt_text: str,
                         add_special: bool) -> tuple[list[int], list[int], list[int]]:
    """Token ids with character spans; special tokens added by the tokenizer get empty spans."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        spans = [tuple(span) for span in enc["offset_mapping"]]
        special = set(getattr(tokenizer, "all_special_ids", []))
        # Trailing special tokens (tokenizers that append EOS themselves): evalcast adds EOS itself.
        while ids and ids[-1] in special and spans[-1][0] == spans[-1][1]:
            ids.pop()
            spans.pop()
        return ids, [s for s, _ in spans], [e for _, e in spans]
    # Slow tokenizers have no offsets: the prompt's own ids give the split.
    full = list(tokenizer(text, add_special_tokens=add_special)["input_ids"])
    head = list(tokenizer(prompt_text, add_special_tokens=add_special)["input_ids"])
    split = 0
    while split < min(len(full), len(head)) and full[split] == head[split]:
        split += 1
    starts = [0] * split + [len(prompt_text)] * (len(full) - split)
    ends = [0] * split + [len(text)] * (len(full) - split)
    return full, starts, ends


def _answer_span(solution: str, answer: str | None, offset: int) -> tuple[int, int] | None:
    if not answer:
        return None
    at = solution.rfind(answer.strip())
    if at < 0:
        return None
    return offset + at, offset + at + len(answer.strip())


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash that changes whenever the tokenizer would produce different ids."""
    parts: dict[str, Any] = {
        "class": type(tokenizer).__name__,
        "special": {k: str(v) for k, v in sorted(getattr(tokenizer, "special_tokens_map", {}).items())},
        "chat_template": str(getattr(tokenizer, "chat_template", None)),
        "len": len(tokenizer),
    }
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        parts["backend"] = backend.to_str()
    else:
        parts["vocab"] = sorted(tokenizer.get_vocab().items())
    blob = json.dumps(parts, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def token_counts(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Unigram counts of ``ids`` over a vocabulary (the rarity weighting's frequency table)."""
    return np.bincount(ids.astype(np.int64), minlength=vocab_size).astype(np.float64)
