"""The tokenized expert set as flat arrays, and its on-disk cache.

Sequences (expert solutions, for pairs flawed negatives, for multiple-choice rows the wrong choices) are
concatenated into one id array with offsets; scored tokens (the solution part) carry one frozen weight
per weighting. The cache is an ``.npz`` written atomically under a key that hashes the rows, the
tokenizer and the settings, so a restart or another rank reuses it instead of tokenizing again.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CACHE_FORMAT = 2
EXPERT, NEGATIVE, CHOICE, EVAL = 0, 1, 2, 3


@dataclass
class TokenTable:
    """Every tokenized sequence of an expert set.

    ids: all token ids, sequence after sequence; seq_offsets: ``[n_seq + 1]`` starts in ``ids``;
    solution_start: index, within its sequence, of the first scored token; record_index: the
    :class:`~evalcast.data.records.ExpertRecord` a sequence comes from; kind: EXPERT, NEGATIVE, CHOICE
    (a wrong choice of a multiple-choice row; its correct choice is the row's EXPERT sequence) or EVAL
    (an evaluation question, its answer scored after the prompt);
    category: a negative's flaw category ('' for experts); n_bytes: UTF-8 bytes of the scored text;
    choice: index of the choice a sequence continues with (-1 outside multiple-choice rows);
    weights: name -> one value per scored token, in sequence order.
    """

    ids: np.ndarray
    seq_offsets: np.ndarray
    solution_start: np.ndarray
    record_index: np.ndarray
    kind: np.ndarray
    category: list[str]
    n_bytes: np.ndarray
    truncated: np.ndarray
    choice: np.ndarray
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_seq(self) -> int:
        return len(self.solution_start)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.seq_offsets)

    @property
    def scored_lengths(self) -> np.ndarray:
        return self.lengths - self.solution_start

    @property
    def scored_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.scored_lengths)]).astype(np.int64)

    def sequence(self, i: int) -> np.ndarray:
        return self.ids[self.seq_offsets[i]:self.seq_offsets[i + 1]]

    def scored_targets(self) -> np.ndarray:
        """The expert token id of every scored token, in weight order."""
        mask = np.zeros(len(self.ids), dtype=bool)
        for i in range(self.n_seq):
            mask[self.seq_offsets[i] + self.solution_start[i]:self.seq_offsets[i + 1]] = True
        return self.ids[mask]

    def save(self, path: Path, meta: dict) -> None:
        arrays = {
            "ids": self.ids, "seq_offsets": self.seq_offsets, "solution_start": self.solution_start,
            "record_index": self.record_index, "kind": self.kind, "n_bytes": self.n_bytes,
            "truncated": self.truncated, "choice": self.choice, **{f"w_{k}": v for k, v in self.weights.items()},
        }
        meta = {**meta, "format": CACHE_FORMAT, "category": self.category}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
        os.close(fd)
        np.savez(tmp, meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8), **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> tuple[TokenTable, dict] | None:
        """The cached table and its metadata, or ``None`` if absent, stale or unreadable."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode("utf-8"))
                if meta.get("format") != CACHE_FORMAT:
                    return None
                weights = {k[2:]: data[k] for k in data.files if k.startswith("w_")}
                table = cls(ids=data["ids"], seq_offsets=data["seq_offsets"],
                            solution_start=data["solution_start"], record_index=data["record_index"],
                            kind=data["kind"], category=list(meta["category"]), n_bytes=data["n_bytes"],
                            truncated=data["truncated"], choice=data["choice"], weights=weights)
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return None
        return table, meta
