"""``evalcast check``: validate an expert file against a saved model and tokenizer before training.

It builds the expert set as the monitor would (rows, skips, truncation, unknown tokens, prompt
boundaries), scores every expert solution with the scorer (a scorer that cannot read the experts' own
answers reads 0 on any model), shows rendered examples, runs an anchor on a few questions, and lists
what to fix. Errors are what would make the numbers wrong or training fail; warnings deserve a look.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from evalcast.data.expert_set import ExpertSet
from evalcast.data.files import LoadReport, load_records
from evalcast.data.formatting import render_prompt
from evalcast.data.records import ExpertSetError, FieldMap
from evalcast.data.table import EXPERT
from evalcast.data.tokenize import TokenizeConfig
from evalcast.generate import CodeExecutionScorer, DecodeConfig, GenerativeResult, ScorerSpec, evaluate_generative
from evalcast.generate.select import ScorerChoice
from evalcast.monitor.anchors import anchor_questions
from evalcast.stats.head import check_compatible


@dataclass(frozen=True)
class Finding:
    level: Literal["error", "warning"]
    text: str


@dataclass
class CheckReport:
    """Everything ``evalcast check`` found; :meth:`render` is what it prints."""

    rows: int = 0
    skipped: list[str] = field(default_factory=list)
    truncated: int = 0
    unknown_tokens: int = 0
    lengths: list[int] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    self_scores: Counter[str] = field(default_factory=Counter)
    anchor: GenerativeResult | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)

    def add(self, level: Literal["error", "warning"], text: str) -> None:
        self.findings.append(Finding(level, text))

    def render(self) -> str:
        out = [f"rows: {self.rows} loaded, {len(self.skipped)} skipped, {self.truncated} truncated, "
               f"{self.unknown_tokens} unknown tokens"]
        out += [f"  skipped: {s}" for s in self.skipped[:5]]
        if self.lengths:
            out.append("sequence length (tokens, prompt + solution + EOS):")
            counts, edges = np.histogram(self.lengths, bins=min(8, len(set(self.lengths))))
            for c, lo, hi in zip(counts, edges[:-1], edges[1:]):
                out.append(f"  {lo:7.0f} - {hi:7.0f}  {'#' * round(40 * c / max(counts)):<40} {c}")
        if self.self_scores:
            out.append("expert solutions judged by the scorer: " + ", ".join(
                f"{k} {v}" for k, v in self.self_scores.most_common()))
        out += ["", "rendered examples (prompt | solution, as the model sees them):", *self.examples]
        if self.anchor is not None:
            out += ["", f"anchor on {len(self.anchor.questions)} question(s): pass@1 {self.anchor.pass_at_1:.3f}"]
            for q in self.anchor.questions:
                out.append(f"  {q.id}: completion {q.completions[0][:70]!r} -> extracted {q.extracted[0]!r}: "
                           f"{q.reasons[0]}")
        out += ["", "what to fix:" if self.findings else "nothing to fix."]
        out += [f"  {f.level.upper()}: {f.text}" for f in self.findings]
        return "\n".join(out)


def check_experts(experts_path: str | Path, model_dir: str | Path, *, tokenizer_dir: str | Path | None = None,
                  questions: int = 8, fields: FieldMap | Mapping[str, str] | None = None,
                  config: TokenizeConfig = TokenizeConfig(), scorer: ScorerSpec | None = None,
                  decode: DecodeConfig = DecodeConfig(max_new_tokens=128, progress=False),
                  device: str = "cpu") -> CheckReport:
    """Check ``experts_path`` against the model (and tokenizer) saved in ``model_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    report = CheckReport()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or model_dir)
    loaded = LoadReport()
    try:
        records = load_records(experts_path, fields=fields, on_invalid="skip", report=loaded)
        experts = ExpertSet(records, tokenizer, config=config, on_invalid="skip", on_unknown="warn", progress=False)
    except ExpertSetError as exc:
        report.skipped = loaded.skipped
        report.add("error", str(exc))
        return report
    build = experts.report
    report.rows, report.skipped, report.truncated = len(records), loaded.skipped + build.skipped, build.truncated
    report.unknown_tokens = build.format.unknown_tokens
    report.lengths = experts.table.lengths[experts.table.kind == EXPERT].tolist()
    if report.skipped:
        report.add("error", f"{len(report.skipped)} row(s) would stop an ExpertSet built with on_invalid='error'; "
                            f"first: {report.skipped[0]}. Fix the rows, or build with on_invalid='skip'")
    if report.truncated:
        report.add("warning", f"{report.truncated} solution(s) cut at max_length={experts.max_length} tokens; "
                              "raise TokenizeConfig(max_length=...) to score them whole")
    report.findings += [Finding("error", t) for t in build.format.errors()]
    report.findings += [Finding("warning", t) for t in build.format.warnings()]
    fmt = config.prompt_format
    for record in experts.records[:3]:
        report.examples.append(f"  [{record.task}] {render_prompt(record.prompt, tokenizer, fmt)!r} | "
                               f"{record.solution[:120]!r}")
    _self_check(experts, scorer, report)
    rows = anchor_questions(experts, questions)[:questions]
    chosen = [experts.records[experts.table.record_index[i]] for i in rows]
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir).to(device)
        check_compatible(model, vocab_size=experts.vocab_size, longest=int(experts.table.lengths.max()))
        report.anchor = evaluate_generative(model, tokenizer, chosen, config=replace(decode, prompt_format=fmt),
                                            scorer=scorer)
    except Exception as exc:
        report.add("error", f"the anchor could not run on {model_dir}: {type(exc).__name__}: {exc}")
        return report
    outcomes = report.anchor.outcomes
    if outcomes.get("no answer extracted", 0) == sum(outcomes.values()):
        report.add("warning", "no completion held an answer the scorer could read: expected from an untrained "
                              "model; from a trained one the prompt format or the scorer is wrong (see the preview)")
    return report


def _self_check(experts: ExpertSet, scorer: ScorerSpec | None, report: CheckReport) -> None:
    """Score every expert solution as if it were a completion (code rows are left to the anchor)."""
    choose = ScorerChoice(scorer, code=CodeExecutionScorer())
    missing = [r for r in experts.records if r.answer is None and "test" not in r.meta]
    if missing:
        first = missing[0].source or missing[0].id
        report.add("error", f"{len(missing)} row(s) have no reference answer (first: {first}"
                            "): every completion is scored wrong. Fix: give an 'answer' field, or end solutions with "
                            "'#### <answer>'")
    results = [(r, choose(r).score(r, r.solution)) for r in experts.records
               if not isinstance(choose(r), CodeExecutionScorer) and r.answer is not None]
    report.self_scores = Counter(res.reason for _, res in results)
    wrong = [(r, res) for r, res in results if not res.correct]
    if wrong:
        r, res = wrong[0]
        level: Literal["error", "warning"] = "error" if len(wrong) * 2 >= len(results) else "warning"
        report.add(level, f"the scorer judges {len(wrong)} of {len(results)} expert solution(s) wrong (first: "
                          f"{r.source or r.id}: {res.reason}, extracted {res.extracted!r} vs answer {r.answer!r}): "
                          "anchors would miss right answers written the same way. Fix: a scorer whose pattern "
                          "matches how answers are written (--scorer exact:REGEX or numeric:REGEX, "
                          "AnchorConfig(scorer=...)), or a per-row meta.answer_pattern")
