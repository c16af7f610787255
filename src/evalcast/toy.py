"""Tiny tokenizers and models built from configs, for the demo, the tests and the benchmarks.

No model hub is needed: the tokenizer is a character-level BPE without merges built with the
``tokenizers`` library, and models come from ``GPT2Config`` / ``LlamaConfig``. Saved with
``save_pretrained``, they reload with the same ``from_pretrained`` calls real users make.
"""

from __future__ import annotations

import random
import string
from typing import Any

from tokenizers import Tokenizer, decoders, models
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from evalcast.data import ExpertRecord, Negative

DEFAULT_ALPHABET = string.ascii_lowercase + string.ascii_uppercase + string.digits + " \n+-*/=.,:;#()[]<>?!'_"
SPECIAL = ("<pad>", "<eos>", "<unk>")


def char_tokenizer(alphabet: str = DEFAULT_ALPHABET) -> PreTrainedTokenizerFast:
    """A character-level tokenizer: ids 0–2 are ``<pad>``, ``<eos>`` (also BOS), ``<unk>``."""
    chars = list(dict.fromkeys(alphabet))
    vocab = {token: i for i, token in enumerate([*SPECIAL, *chars])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>",
                                   unk_token="<unk>", bos_token="<eos>", model_max_length=1024)


def tiny_gpt2(tokenizer: Any, *, n_layer: int = 2, n_embd: int = 64, n_head: int = 2, n_positions: int = 256,
              vocab_size: int | None = None, seed: int = 0, **config: Any) -> PreTrainedModel:
    """A GPT-2 (tied embeddings) sized for CPU; ``vocab_size`` above the tokenizer's pads the vocabulary."""
    import torch

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab_size or len(tokenizer), n_layer=n_layer, n_embd=n_embd, n_head=n_head,
                     n_positions=n_positions, bos_token_id=tokenizer.eos_token_id,
                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **config)
    return GPT2LMHeadModel(cfg)


def tiny_llama(tokenizer: Any, *, n_layer: int = 2, hidden: int = 64, heads: int = 4, kv_heads: int = 2,
               max_positions: int = 256, vocab_size: int | None = None, tie: bool = False, seed: int = 0,
               **config: Any) -> PreTrainedModel:
    """A Llama (RMSNorm, RoPE, GQA, untied output layer by default) sized for CPU."""
    import torch

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size or len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=n_layer, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      max_position_embeddings=max_positions, tie_word_embeddings=tie,
                      bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id, **config)
    return LlamaForCausalLM(cfg)


class TextDataset:
    """Texts tokenized for causal-LM training: EOS appended, right-padded to ``length``, padding masked out.

    Items are dicts of ``length``-long tensors (any collator stacks them). :meth:`collate` also trims a
    batch to its longest text (a multiple of 8): pass it as a ``Trainer``'s ``data_collator`` or a
    ``DataLoader``'s ``collate_fn`` and short texts cost short batches.
    """

    def __init__(self, tokenizer: Any, texts: list[str], length: int) -> None:
        import torch

        pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
        encoded = [[*row, eos][:length] for row in tokenizer(texts, add_special_tokens=True)["input_ids"]]
        self.input_ids = torch.full((len(texts), length), pad, dtype=torch.long)
        self.attention_mask = torch.zeros_like(self.input_ids)
        for i, row in enumerate(encoded):
            self.input_ids[i, :len(row)] = torch.tensor(row)
            self.attention_mask[i, :len(row)] = 1
        self.labels = self.input_ids.masked_fill(self.attention_mask == 0, -100)

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.input_ids[i], "attention_mask": self.attention_mask[i], "labels": self.labels[i]}

    @staticmethod
    def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        stacked = {key: torch.stack([item[key] for item in batch]) for key in batch[0]}
        width = -(-int(stacked["attention_mask"].sum(1).max()) // 8) * 8
        return {key: value[:, :width] for key, value in stacked.items()}


def arithmetic_records(n: int = 24, seed: int = 0) -> list[ExpertRecord]:
    """``n`` expert rows of two tasks (``add``, ``sub``) with worked solutions (``#### answer``), a domain tree
    (``math/add``, ``math/sub``) and one flawed negative (the answer off by one) per row."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 49), rng.randint(1, 49)
        task, op, value = ("add", "+", a + b) if i % 2 else ("sub", "-", a - b)
        solution = f"{a}{op}{b}={value}\n#### {value}"
        rows.append(ExpertRecord(prompt=f"what is {a}{op}{b}?", solution=solution, task=task, id=f"{task}-{i}",
                                 domain=f"math/{task}",
                                 negatives=(Negative(solution.replace(str(value), str(value + 1)), "wrong_answer"),)))
    return rows
