"""Batched generation with any transformers causal LM: greedy or sampled, ``n`` per prompt, stop strings.

Prompts are left-padded by hand (the tokenizer is never touched), the model runs in eval mode with each
module's mode restored afterwards, and sampling draws from a forked, seeded RNG, so the caller's torch
CPU/CUDA random streams are left as they were. ``model.config`` and ``model.generation_config`` are not
modified: every decoding choice is passed to ``generate`` explicitly. Settings of the model's generation
config that evalcast does not pass (``repetition_penalty``, ``min_new_tokens`` ...) still apply, as
they do in lm-evaluation-harness.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

from evalcast.data.formatting import PromptConfig
from evalcast.stats.head import max_positions
from evalcast.validation import Rule, above, at_least, between, check_config, each


@dataclass(frozen=True)
class DecodeConfig:
    """How anchor evaluations decode (keep it fixed across anchors: greedy accuracy is not pass@1 at T)."""

    greedy: bool = True
    """Greedy decoding (one completion per question); False samples with ``temperature``/``top_p``/``top_k``."""
    temperature: float = 1.0
    """Sampling temperature (> 0)."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens with this much probability (1: off)."""
    top_k: int = 0
    """Top-k filter when sampling; 0 turns it off (transformers would otherwise apply 50)."""
    n: int = 1
    """Completions per question."""
    max_new_tokens: int = 256
    """Longest completion, in tokens."""
    stop: tuple[str, ...] = ()
    """Generation ends at the first of these strings; the completion is cut before it."""
    batch_size: int = 8
    """Sequences (question x sample) per ``generate`` call."""
    seed: int = 0
    """Seed of the forked RNG that sampling draws from."""
    prompt_format: PromptConfig = field(default_factory=PromptConfig)
    """How prompts are rendered (replaced by the expert set's in anchors)."""
    ks: tuple[int, ...] = (1,)
    """pass@k values to report (each at most ``n``)."""
    synced_gpus: bool = False
    """Pass to ``generate`` under FSDP / ZeRO-3: every rank must then make the same number of calls,
    so give every rank the same number of questions."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        check_config(self, temperature=above(0), top_p=between(0, 1, low_open=True), top_k=at_least(0),
                     n=at_least(1), max_new_tokens=at_least(1), batch_size=at_least(1), seed=at_least(0),
                     stop=each(Rule("a non-empty string", bool)),
                     ks=Rule(f"non-empty, each k in 1..n={self.n}", lambda ks: bool(ks) and all(1 <= k <= self.n
                                                                                              for k in ks)))
        if self.greedy and self.n != 1:
            raise ValueError(f"DecodeConfig.n={self.n}: greedy decoding gives n identical completions; use n=1 or "
                             "greedy=False")


@dataclass(frozen=True)
class Generation:
    """The ``n`` completions of one prompt and how many tokens each took (EOS or stop included)."""

    texts: tuple[str, ...]
    tokens: tuple[int, ...]


def encode_prompt(tokenizer: Any, text: str, fmt: PromptConfig) -> list[int]:
    """Token ids of a rendered prompt: the tokenizer's own special-token policy, none added to chat text."""
    return list(tokenizer(text, add_special_tokens=not fmt.chat_template)["input_ids"])


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the earliest occurrence of any stop string."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]


def generate_completions(model: Any, tokenizer: Any, prompts: Sequence[str],
                         config: DecodeConfig = DecodeConfig()) -> list[Generation]:
    """Generate ``config.n`` completions for each rendered prompt, in prompt order."""
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        if not eos_ids:
            raise ValueError("the tokenizer has neither a pad nor an EOS token; set tokenizer.pad_token first")
        pad_id = eos_ids[0]
    device = _device(model)
    encoded = [encode_prompt(tokenizer, p, config.prompt_format) for p in prompts]
    if any(not ids for ids in encoded):
        raise ValueError("a prompt encodes to no tokens; generation needs at least one prompt token")
    rows = sorted(((q, s) for q in range(len(prompts)) for s in range(config.n)), key=lambda r: -len(encoded[r[0]]))
    texts: list[list[str]] = [[""] * config.n for _ in prompts]
    tokens: list[list[int]] = [[0] * config.n for _ in prompts]
    kwargs: dict[str, Any] = dict(
        max_new_tokens=config.max_new_tokens, do_sample=not config.greedy, num_beams=1, num_return_sequences=1,
        pad_token_id=pad_id, eos_token_id=eos_ids or None, use_cache=True, synced_gpus=config.synced_gpus,
        return_dict_in_generate=False)
    if not config.greedy:
        kwargs.update(temperature=config.temperature, top_p=config.top_p, top_k=config.top_k)
    batches = range(0, len(rows), config.batch_size)
    limit = max_positions(model)
    with _eval_mode(model), _forked_rng(device, None if config.greedy else config.seed), torch.no_grad():
        for start in tqdm(batches, desc="generate", disable=not config.progress):
            batch = rows[start:start + config.batch_size]
            input_ids, attention_mask = _left_pad([encoded[q] for q, _ in batch], pad_id, device)
            if limit is not None:  # never generate past the model's positions: the completion is cut there
                room = limit - input_ids.shape[1]
                if room < 1:
                    raise ValueError(f"a prompt of {input_ids.shape[1]} tokens leaves no room to generate in the "
                                     f"model's {limit} positions")
                kwargs["max_new_tokens"] = min(config.max_new_tokens, room)
            stops = _StopStrings(tokenizer, config.stop, input_ids.shape[1])
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                 stopping_criteria=StoppingCriteriaList([stops] if config.stop else []), **kwargs)
            for row, ((q, s), ids) in enumerate(zip(batch, out[:, input_ids.shape[1]:].tolist())):
                texts[q][s], tokens[q][s] = _finish(ids, eos_ids, stops.lengths.get(row), tokenizer, config.stop)
    return [Generation(tuple(t), tuple(k)) for t, k in zip(texts, tokens)]


def _finish(ids: list[int], eos_ids: list[int], stopped_at: int | None, tokenizer: Any,
            stop: tuple[str, ...]) -> tuple[str, int]:
    """Completion text (cut at EOS, then before the first stop string) and the tokens it took."""
    end = next((i for i, t in enumerate(ids) if t in eos_ids), None)
    length = min(len(ids) if end is None else end + 1, stopped_at or len(ids))
    kept = ids[:end] if end is not None and end < length else ids[:length]
    return truncate_at_stop(tokenizer.decode(kept, skip_special_tokens=True), stop), length


class _StopStrings(StoppingCriteria):
    """Marks a row done once its decoded completion contains a stop string; remembers at which length."""

    def __init__(self, tokenizer: Any, stop: tuple[str, ...], prompt_length: int) -> None:
        self.tokenizer, self.stop, self.prompt_length = tokenizer, stop, prompt_length
        self.lengths: dict[int, int] = {}

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        new = input_ids[:, self.prompt_length:].tolist()
        for row, ids in enumerate(new):
            if row not in self.lengths:
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                if any(s in text for s in self.stop):
                    self.lengths[row] = len(ids)
        done = [row in self.lengths for row in range(len(new))]
        return cast(torch.BoolTensor, torch.tensor(done, dtype=torch.bool, device=input_ids.device))


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    candidates = [*(configured if isinstance(configured, list) else [configured]), tokenizer.eos_token_id]
    return list(dict.fromkeys(int(i) for i in candidates if i is not None))


def _device(model: Any) -> torch.device:
    device = getattr(model, "device", None)
    return device if isinstance(device, torch.device) else next(model.parameters()).device


def _left_pad(sequences: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
        mask[i, width - len(seq):] = 1
    return ids.to(device), mask.to(device)


@contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Eval mode for generation; every submodule gets its own previous mode back."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


@contextmanager
def _forked_rng(device: torch.device, seed: int | None) -> Iterator[None]:
    """Fork the CPU RNG (and the model's CUDA device's) and seed inside; the caller's streams are restored."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        if seed is not None:
            torch.random.default_generator.manual_seed(seed)
            for index in cuda:
                torch.cuda.default_generators[index].manual_seed(seed)
        yield
