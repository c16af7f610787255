"""``ExpertSet``: validated rows, tokenized once, with frozen weights, cached on disk, batched by length."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from evalcast.data.batching import BatchPlan, plan_batches
from evalcast.data.records import ExpertRecord, ExpertSetError, FieldMap, LoadReport, OnInvalid, load_records
from evalcast.data.table import EXPERT, NEGATIVE, TokenTable
from evalcast.data.tokenize import (
    OverlongError,
    TokenizeConfig,
    Tokenized,
    resolve_max_length,
    tokenize_pair,
    tokenizer_fingerprint,
)
from evalcast.data.tokenize import token_counts as count_tokens
from evalcast.data.weights import base_weights

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("EVALCAST_CACHE", Path.home() / ".cache" / "evalcast")) / "expert_sets"


@dataclass
class BuildReport:
    """What building the expert set did: rows loaded and skipped (with reasons), sequences truncated."""

    rows: int = 0
    skipped: list[str] = field(default_factory=list)
    truncated: int = 0
    negatives: int = 0
    from_cache: bool = False

    def summary(self) -> str:
        return (f"{self.rows} rows, {len(self.skipped)} skipped, {self.truncated} truncated, "
                f"{self.negatives} negatives{' (cache)' if self.from_cache else ''}")


class ExpertSet:
    """Expert trajectories ready for the teacher-forced pass.

    Rows are tokenized with ``tokenizer`` once; token ids, prompt/solution split and frozen per-token
    weights are cached under ``cache_dir`` keyed by (rows, tokenizer fingerprint, ``config``).
    ``token_counts`` is the unigram table behind the rarity weightings (default: counts over the expert
    solutions themselves; pass counts from a training-corpus sample when you have one).
    """

    def __init__(self, records: Sequence[ExpertRecord], tokenizer: Any, *,
                 config: TokenizeConfig = TokenizeConfig(), token_counts: np.ndarray | None = None,
                 cache_dir: str | Path | None = None, on_invalid: OnInvalid = "error", progress: bool = True,
                 report: BuildReport | None = None) -> None:
        if not records:
            raise ExpertSetError("an expert set needs at least one row")
        self.records = list(records)
        self.tokenizer = tokenizer
        self.config = config
        self.max_length = resolve_max_length(tokenizer, config)
        self.report = report or BuildReport()
        self.report.rows = len(self.records)
        self.tokenizer_fingerprint = tokenizer_fingerprint(tokenizer)
        self.fingerprint = self._cache_key(token_counts)
        cache_path = Path(cache_dir or default_cache_dir()) / f"{self.fingerprint[:24]}.npz"
        cached = TokenTable.load(cache_path)
        if cached is not None:
            self.table, meta = cached
            self.report.skipped = list(meta.get("skipped", [])) + self.report.skipped
            self.report.from_cache = True
        else:
            self.table = self._build(token_counts, on_invalid, progress)
            self.table.save(cache_path, {"skipped": self.report.skipped[-1000:]})
        self.cache_path = cache_path
        self.report.truncated = int(self.table.truncated.sum())
        self.report.negatives = int((self.table.kind == NEGATIVE).sum())
        if self.report.skipped:
            logger.warning("expert set: %s; first skip: %s", self.report.summary(), self.report.skipped[0])

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_file(cls, path: str | Path, tokenizer: Any, *, fields: FieldMap | Mapping[str, str] | None = None,
                  task: str | None = None, on_invalid: OnInvalid = "error", **kwargs: Any) -> ExpertSet:
        """Load JSONL / JSON / Parquet rows (``fields`` maps names, e.g. ``{"prompt": "question"}``)."""
        load_report = LoadReport()
        records = load_records(path, fields=fields, task=task, on_invalid=on_invalid, report=load_report)
        return cls(records, tokenizer, on_invalid=on_invalid, report=BuildReport(skipped=load_report.skipped),
                   **kwargs)

    from_jsonl = from_file
    from_parquet = from_file

    @classmethod
    def from_dataset(cls, dataset: Any, tokenizer: Any, *, split: str | None = None,
                     fields: FieldMap | Mapping[str, str] | None = None, task: str | None = None,
                     on_invalid: OnInvalid = "error", **kwargs: Any) -> ExpertSet:
        """Load rows from a local Hugging Face ``datasets`` ``Dataset`` (or ``DatasetDict`` + ``split``)."""
        load_report = LoadReport()
        records = load_records(dataset, fields=fields, split=split, task=task, on_invalid=on_invalid,
                               report=load_report)
        return cls(records, tokenizer, on_invalid=on_invalid, report=BuildReport(skipped=load_report.skipped),
                   **kwargs)

    def _cache_key(self, counts: np.ndarray | None) -> str:
        digest = hashlib.sha256()
        header = {"format": 1, "tokenizer": self.tokenizer_fingerprint,
                  "settings": self.config.key(self.max_length)}  # this key name is hashed into every fingerprint
        digest.update(json.dumps(header, sort_keys=True).encode())
        for record in self.records:
            digest.update(json.dumps(record.to_json(), sort_keys=True, ensure_ascii=False).encode())
        if counts is not None:
            digest.update(np.ascontiguousarray(counts, dtype=np.float64).tobytes())
        return digest.hexdigest()

    def _build(self, counts: np.ndarray | None, on_invalid: OnInvalid, progress: bool) -> TokenTable:
        seqs: list[Tokenized] = []
        record_index: list[int] = []
        kinds: list[int] = []
        categories: list[str] = []
        for r, record in enumerate(tqdm(self.records, desc="evalcast: tokenizing expert set", disable=not progress,
                                        leave=False)):
            texts = [(record.solution, record.answer, EXPERT, "")]
            texts += [(neg.text, None, NEGATIVE, neg.category) for neg in record.negatives]
            for text, answer, kind, category in texts:
                reason = f"longer than max_length={self.max_length} tokens (overlong='skip')"
                try:
                    tokenized = tokenize_pair(self.tokenizer, record.prompt, text, answer, self.config,
                                              self.max_length)
                except (OverlongError, ValueError) as exc:
                    if on_invalid == "error":
                        raise ExpertSetError(f"row {record.id!r}: {exc}", source=f"expert set row {r + 1}",
                                             field_name="negatives" if kind else "solution",
                                             hint="Set on_invalid='skip' to drop such rows.") from None
                    tokenized, reason = None, str(exc)
                if tokenized is None:
                    self.report.skipped.append(f"row {record.id!r}: {'negative' if kind else 'solution'}: {reason}")
                    if kind == EXPERT:
                        break
                    continue
                seqs.append(tokenized)
                record_index.append(r)
                kinds.append(kind)
                categories.append(category)
        if not any(k == EXPERT for k in kinds):
            reasons = "; ".join(self.report.skipped[:3])
            raise ExpertSetError("no row survived tokenization",
                                 hint=f"{len(self.report.skipped)} skipped, e.g. {reasons}.")
        return self._assemble(seqs, record_index, kinds, categories, counts)

    def _assemble(self, seqs: list[Tokenized], record_index: list[int], kinds: list[int], categories: list[str],
                  counts: np.ndarray | None) -> TokenTable:
        lengths = np.array([len(s.ids) for s in seqs], dtype=np.int64)
        table = TokenTable(
            ids=np.concatenate([np.asarray(s.ids, dtype=np.int32) for s in seqs]),
            seq_offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            solution_start=np.array([s.solution_start for s in seqs], dtype=np.int32),
            record_index=np.array(record_index, dtype=np.int32), kind=np.array(kinds, dtype=np.int8),
            category=categories, n_bytes=np.array([s.n_bytes for s in seqs], dtype=np.int64),
            truncated=np.array([s.truncated for s in seqs], dtype=bool))
        targets = table.scored_targets()
        scored = table.scored_lengths
        seq_of_token = np.repeat(np.arange(table.n_seq), scored)
        pos_in_seq = np.arange(len(targets)) - np.repeat(table.scored_offsets[:-1], scored)
        answer = np.concatenate([np.asarray(s.answer_mask[s.solution_start:], dtype=bool) for s in seqs])
        if counts is None:
            expert_tokens = np.repeat(table.kind == EXPERT, scored)
            counts = count_tokens(targets[expert_tokens], max(len(self.tokenizer), int(table.ids.max()) + 1))
        table.weights = base_weights(targets, seq_of_token, pos_in_seq, scored, answer, counts)
        return table

    # ---------------------------------------------------------------- views
    @property
    def vocab_size(self) -> int:
        """Token ids the tokenizer can produce (rows of the output layer beyond it are padding)."""
        return max(len(self.tokenizer), int(self.table.ids.max()) + 1)

    @property
    def tasks(self) -> list[str]:
        return sorted({r.task for r in self.records})

    @property
    def n_expert(self) -> int:
        return int((self.table.kind == EXPERT).sum())

    @property
    def weighting_names(self) -> list[str]:
        return list(self.table.weights)

    def batches(self, *, max_tokens: int = 16384, pad_multiple: int = 64, max_batch_size: int = 256,
                world_size: int = 1, rank: int = 0) -> list[BatchPlan]:
        """This rank's share of the forward batches (see :func:`~evalcast.data.batching.plan_batches`)."""
        return plan_batches(self.table.lengths, max_tokens=max_tokens, pad_multiple=pad_multiple,
                            max_batch_size=max_batch_size, world_size=world_size, rank=rank)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (f"ExpertSet({len(self.records)} rows, tasks={self.tasks}, {len(self.table.ids)} tokens, "
                f"max_length={self.max_length}, fingerprint={self.fingerprint[:12]})")
