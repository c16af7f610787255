"""Format checks while an expert set is built: text the tokenizer cannot represent, and prompt boundaries.

A silent format mismatch gives plausible but wrong numbers (an unknown token between every question and
its solution halves pass@1 and nothing warns), so these fail loudly, naming a row and the fix:

* tokens that map to the tokenizer's unknown id, and text that does not survive encode → decode
  (non-whitespace characters lost), under ``on_unknown`` (``"error"`` raises, ``"warn"`` logs);
* the prompt separator itself not surviving the tokenizer (then ``separator=""`` is the fix);
* a warning when the prompt's tokens inside prompt + solution differ from the prompt tokenized alone
  (generation starts from the latter, so the model would continue from a boundary it never saw).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from evalcast.data.formatting import render_prompt
from evalcast.data.records import ExpertRecord, ExpertSetError
from evalcast.data.tokenize import TokenizeConfig

logger = logging.getLogger(__name__)

OnUnknown = Literal["error", "warn"]


@dataclass
class FormatReport:
    """What the format checks found over every tokenized sequence (kept with the cached table)."""

    unknown_tokens: int = 0
    unknown_rows: int = 0
    unknown_example: str = ""
    unknown_chars: list[str] = field(default_factory=list)
    lost_rows: int = 0
    lost_example: str = ""
    separator_rows: int = 0
    separator_unknown: bool = False
    boundary_rows: int = 0
    boundary_example: str = ""

    def errors(self) -> list[str]:
        """The problems ``on_unknown`` governs, each with its fix."""
        out = []
        sep_fix = ("Fix: TokenizeConfig(prompt_format=PromptConfig(separator=\"\")) (or a separator the tokenizer "
                   "knows, as the training text had it; on the command line: --separator '')")
        if self.separator_unknown and self.separator_rows:
            out.append(f"the prompt separator does not survive this tokenizer (unknown or dropped), and "
                       f"{self.separator_rows} row(s) put it between prompt and solution "
                       f"({self.unknown_tokens} unknown token(s) in all): the model would see a "
                       f"token there it never saw in training; first row: {self.unknown_example or self.lost_example}."
                       f" {sep_fix}")
        only_separator = self.separator_unknown and self.separator_rows == self.unknown_tokens
        if self.unknown_tokens and not only_separator:
            chars = f" (characters not in the vocabulary: {self.unknown_chars})" if self.unknown_chars else ""
            out.append(f"{self.unknown_tokens} token(s) in {self.unknown_rows} sequence(s) map to the tokenizer's "
                       f"unknown token{chars}; first: {self.unknown_example}. Fix: clean those characters from the "
                       "expert file, or use the tokenizer the model trains with")
        if self.lost_rows:
            out.append(f"{self.lost_rows} sequence(s) lose characters through encode -> decode; first: "
                       f"{self.lost_example}. Fix: clean those characters, or use the training tokenizer")
        return out

    def warnings(self) -> list[str]:
        if not self.boundary_rows:
            return []
        return [f"{self.boundary_rows} prompt(s) tokenize differently alone than inside prompt + solution, so "
                f"generation starts from tokens the model never saw at that boundary; first: {self.boundary_example}."
                " Fix: end prompts (or the separator) on a token boundary, e.g. separator=\"\\n\" or \" \""]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FormatReport:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class FormatChecker:
    """Checks every tokenized sequence of an expert set; :meth:`finish` raises or warns."""

    def __init__(self, tokenizer: Any, config: TokenizeConfig) -> None:
        self.tokenizer, self.config = tokenizer, config
        self.unk = getattr(tokenizer, "unk_token_id", None)
        self.add_special = not config.prompt_format.chat_template
        self.report = FormatReport()
        sep = config.prompt_format.separator
        self.separator_bad = bool(sep) and not config.prompt_format.chat_template and not self._survives(sep)

    def _ids(self, text: str, add_special: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=add_special)["input_ids"])

    def _decode(self, ids: list[int]) -> str:
        """Text of ``ids`` without BOS/EOS/padding (a chat template's own special tokens are text)."""
        drop = {getattr(self.tokenizer, f"{name}_token_id", None) for name in ("bos", "eos", "pad")}
        return self.tokenizer.decode([i for i in ids if i not in drop], skip_special_tokens=False,
                                     clean_up_tokenization_spaces=False)

    def _survives(self, text: str) -> bool:
        ids = self._ids(f"a{text}b", False)
        return (self.unk is None or self.unk not in ids) and text in self._decode(ids)

    def check(self, record: ExpertRecord, row: int, text: str, ids: list[int], truncated: bool) -> None:
        """One sequence (``text`` = the solution or negative after the rendered prompt; ``ids`` its tokens)."""
        where = f"{record.source or f'row {row + 1}'} (row id {record.id!r})"
        prompt = render_prompt(record.prompt, self.tokenizer, self.config.prompt_format)
        used_separator = not self.config.prompt_format.chat_template and prompt != record.prompt
        if used_separator and self.separator_bad:
            self.report.separator_rows += 1
            self.report.separator_unknown = True
        unknown = 0 if self.unk is None else sum(1 for i in ids if i == self.unk)
        if unknown:
            self.report.unknown_tokens += unknown
            self.report.unknown_rows += 1
            if not self.report.unknown_example:
                self.report.unknown_example = f"{where}: {(prompt + text)[:80]!r}"
            if len(self.report.unknown_chars) < 10 and self.report.unknown_rows <= 5:
                self._find_unknown_chars(prompt + text)
        elif not truncated and _squash(self._decode(ids)) != _squash(prompt + text):
            self.report.lost_rows += 1
            self.report.lost_example = self.report.lost_example or f"{where}: {(prompt + text)[:80]!r}"
        head = self._ids(prompt, self.add_special)
        special = set(getattr(self.tokenizer, "all_special_ids", []))
        while len(head) > 1 and head[-1] in special and head[-1] != self.unk:
            head.pop()
        if ids[:len(head)] != head and not truncated:
            self.report.boundary_rows += 1
            self.report.boundary_example = self.report.boundary_example or f"{where}: prompt ends {prompt[-30:]!r}"

    def _find_unknown_chars(self, text: str) -> None:
        for char in dict.fromkeys(text):
            if char not in self.report.unknown_chars and self.unk in self._ids(char, False):
                self.report.unknown_chars.append(char)

    def finish(self, on_unknown: OnUnknown) -> FormatReport:
        return apply_format_report(self.report, on_unknown)


def apply_format_report(report: FormatReport, on_unknown: OnUnknown) -> FormatReport:
    """Raise :class:`ExpertSetError` (``on_unknown="error"``) or log the problems; warnings are logged."""
    errors = report.errors()
    if errors and on_unknown == "error":
        raise ExpertSetError("; ".join(errors), source="expert set format check",
                             hint="Or pass on_unknown='warn' to build the set anyway (its numbers will not "
                                  "describe the model's real input).")
    for text in [*errors, *report.warnings()]:
        logger.warning("evalcast expert set: %s", text)
    return report


def _squash(text: str) -> str:
    return "".join(text.split())
