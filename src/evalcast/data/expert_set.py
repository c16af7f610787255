"""``ExpertSet``: validated rows, tokenized once, with frozen weights, cached on disk, batched by length."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from evalcast.data.batching import BatchPlan, plan_batches
from evalcast.data.checks import FormatChecker, FormatReport, OnUnknown, apply_format_report
from evalcast.data.evaluation import as_evaluation, load_evaluation
from evalcast.data.files import LoadReport, load_records
from evalcast.data.records import ExpertRecord, ExpertSetError, FieldMap, OnInvalid
from evalcast.data.table import CHOICE, EVAL, EXPERT, NEGATIVE, TokenTable
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
    format: FormatReport = field(default_factory=FormatReport)
    """Unknown tokens, lost characters and prompt-boundary mismatches found while tokenizing."""

    def summary(self) -> str:
        return (f"{self.rows} rows, {len(self.skipped)} skipped, {self.truncated} truncated, "
                f"{self.negatives} negatives, {self.format.unknown_tokens} unknown tokens"
                f"{' (cache)' if self.from_cache else ''}")


class ExpertSet:
    """Expert trajectories ready for the teacher-forced pass.

    Rows are tokenized with ``tokenizer`` once; token ids, prompt/solution split and frozen per-token
    weights are cached under ``cache_dir`` keyed by (rows, tokenizer fingerprint, ``config``).
    ``token_counts`` is the unigram table behind the rarity weightings (default: counts over the expert
    solutions themselves; pass counts from a training-corpus sample when you have one). Text the tokenizer
    cannot represent (unknown tokens, characters lost through decode, a separator it lacks) raises
    :class:`ExpertSetError` naming a row and the fix, or only logs with ``on_unknown="warn"``.

    ``evaluation``: separate evaluation questions (records, or a file of prompt + answer rows, see
    :func:`~evalcast.data.evaluation.load_evaluation`); when given, anchors, the probe and the forecasts'
    target use them instead of the expert rows, and the proxies still come from the expert solutions.
    """

    def __init__(self, records: Sequence[ExpertRecord], tokenizer: Any, *,
                 config: TokenizeConfig = TokenizeConfig(), token_counts: np.ndarray | None = None,
                 cache_dir: str | Path | None = None, on_invalid: OnInvalid = "error", progress: bool = True,
                 report: BuildReport | None = None, on_unknown: OnUnknown = "error",
                 evaluation: Sequence[ExpertRecord] | str | Path = ()) -> None:
        if on_unknown not in ("error", "warn"):
            raise ValueError(f"on_unknown={on_unknown!r}: use 'error' or 'warn'")
        if not records:
            raise ExpertSetError("an expert set needs at least one row")
        questions = load_evaluation(evaluation) if isinstance(evaluation, (str, Path)) else as_evaluation(evaluation)
        unknown = sorted({q.task for q in questions} - {r.task for r in records})
        if unknown:
            raise ExpertSetError(f"evaluation questions of task(s) {unknown} have no expert rows (tasks: "
                                 f"{sorted({r.task for r in records})})", source="evaluation",
                                 hint="Forecasts need the proxies of the same task; name the tasks alike.")
        self.n_evaluation = len(questions)
        self.records = list(records) + questions
        self.tokenizer = tokenizer
        self.config = config
        self.max_length = resolve_max_length(tokenizer, config)
        self.report = report or BuildReport()
        self.report.rows = len(self.records)
        self.tokenizer_fingerprint = tokenizer_fingerprint(tokenizer)
        self.fingerprint = self._cache_key(token_counts)
        cache_path = Path(cache_dir or default_cache_dir()) / f"{self.fingerprint[:24]}.npz"
        cached = TokenTable.load(cache_path)
        if cached is not None and "format_checks" not in cached[1]:  # cached before the format checks existed
            cached = None
        if cached is not None:
            self.table, meta = cached
            self.report.skipped = list(meta.get("skipped", [])) + self.report.skipped
            self.report.from_cache = True
            self.report.format = apply_format_report(FormatReport.from_dict(meta.get("format_checks", {})), on_unknown)
        else:
            self.table = self._build(token_counts, on_invalid, progress, on_unknown)
            self.table.save(cache_path, {"skipped": self.report.skipped[-1000:],
                                         "format_checks": self.report.format.to_dict()})
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
        header: dict[str, Any] = {"format": 1, "tokenizer": self.tokenizer_fingerprint,
                                  "settings": self.config.key(self.max_length)}  # hashed into every fingerprint
        if any(record.is_choice for record in self.records):
            header["choice_delimiter"] = self.config.choice_delimiter
        if self.n_evaluation:
            header["evaluation"] = self.n_evaluation
        digest.update(json.dumps(header, sort_keys=True).encode())
        for record in self.records:
            digest.update(json.dumps(record.to_json(), sort_keys=True, ensure_ascii=False).encode())
        if counts is not None:
            digest.update(np.ascontiguousarray(counts, dtype=np.float64).tobytes())
        return digest.hexdigest()

    def _build(self, counts: np.ndarray | None, on_invalid: OnInvalid, progress: bool,
               on_unknown: OnUnknown) -> TokenTable:
        checker = FormatChecker(self.tokenizer, self.config)
        seqs: list[Tokenized] = []
        record_index: list[int] = []
        kinds: list[int] = []
        categories: list[str] = []
        choice: list[int] = []
        for r, record in enumerate(tqdm(self.records, desc="evalcast: tokenizing expert set", disable=not progress,
                                        leave=False)):
            evaluation = r >= len(self.records) - self.n_evaluation
            row: list[tuple[Tokenized, int, str, int, str]] = []
            for text, answer, kind, category, k in _sequences(record, self.config.choice_delimiter, evaluation):
                what = {EXPERT: "solution", NEGATIVE: "negative", CHOICE: f"choice {k}", EVAL: "answer"}[kind]
                reason = f"longer than max_length={self.max_length} tokens (overlong='skip')"
                try:
                    tokenized = tokenize_pair(self.tokenizer, record.prompt, text, answer,
                                              self._choice_config if record.is_choice else self.config,
                                              self.max_length)
                except (OverlongError, ValueError) as exc:
                    if on_invalid == "error":
                        raise ExpertSetError(f"row {record.id!r}: {what}: {exc}", source=f"expert set row {r + 1}",
                                             field_name=_FIELD_OF[kind],
                                             hint="Set on_invalid='skip' to drop such rows.") from None
                    tokenized, reason = None, str(exc)
                if tokenized is None:
                    self.report.skipped.append(f"row {record.id!r}: {what}: {reason}")
                    if kind == NEGATIVE:
                        continue
                    row = []  # without its solution (or any of its choices) a row is not scored
                    break
                row.append((tokenized, kind, category, k, text))
            for tokenized, kind, category, k, text in row:
                checker.check(record, r, text, tokenized.ids, tokenized.truncated)
                seqs.append(tokenized)
                record_index.append(r)
                kinds.append(kind)
                categories.append(category)
                choice.append(k)
        if not any(k == EXPERT for k in kinds):
            reasons = "; ".join(self.report.skipped[:3])
            raise ExpertSetError("no row survived tokenization",
                                 hint=f"{len(self.report.skipped)} skipped, e.g. {reasons}.")
        self.report.format = checker.finish(on_unknown)
        return self._assemble(seqs, record_index, kinds, categories, choice, counts)

    @property
    def _choice_config(self) -> TokenizeConfig:
        """Choices continue the prompt as written, are never truncated and carry no EOS (as in lm-eval)."""
        return replace(self.config, prompt_format=replace(self.config.prompt_format, separator=""), score_eos=False,
                       overlong="error" if self.config.overlong == "error" else "skip")

    def _assemble(self, seqs: list[Tokenized], record_index: list[int], kinds: list[int], categories: list[str],
                  choice: list[int], counts: np.ndarray | None) -> TokenTable:
        lengths = np.array([len(s.ids) for s in seqs], dtype=np.int64)
        table = TokenTable(
            ids=np.concatenate([np.asarray(s.ids, dtype=np.int32) for s in seqs]),
            seq_offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            solution_start=np.array([s.solution_start for s in seqs], dtype=np.int32),
            record_index=np.array(record_index, dtype=np.int32), kind=np.array(kinds, dtype=np.int8),
            category=categories, n_bytes=np.array([s.n_bytes for s in seqs], dtype=np.int64),
            truncated=np.array([s.truncated for s in seqs], dtype=bool), choice=np.array(choice, dtype=np.int32))
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
    def n_choice_rows(self) -> int:
        """Multiple-choice rows that survived tokenization."""
        return int(((self.table.kind == EXPERT) & (self.table.choice >= 0)).sum())

    @property
    def tasks(self) -> list[str]:
        return sorted({r.task for r in self.records})

    @property
    def question_kind(self) -> int:
        """The table kind of the anchor questions: EVAL when evaluation questions were given, else EXPERT."""
        return EVAL if self.n_evaluation and bool((self.table.kind == EVAL).any()) else EXPERT

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


_FIELD_OF = {EXPERT: "solution", NEGATIVE: "negatives", CHOICE: "choices", EVAL: "answer"}


def _sequences(record: ExpertRecord, delimiter: str,
               evaluation: bool) -> list[tuple[str, str | None, int, str, int]]:
    """(text, answer, kind, category, choice index) of every sequence a row contributes."""
    if evaluation:
        return [(record.solution, record.answer, EVAL, "", -1)]
    if record.is_choice:
        return [(delimiter + text, text if k == record.gold else None, EXPERT if k == record.gold else CHOICE, "", k)
                for k, text in enumerate(record.choices)]
    return [(record.solution, record.answer, EXPERT, "", -1),
            *((neg.text, None, NEGATIVE, neg.category, -1) for neg in record.negatives)]
