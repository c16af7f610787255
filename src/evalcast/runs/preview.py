"""The format preview: at the run's first anchor, a few questions exactly as the model saw and answered them.

A wrong prompt format or scorer shows at the first save instead of after training: rendered prompts (with
``repr`` escapes, so a separator or an odd character is visible), the completion, the answer the scorer
extracted, the reference answer and the verdict. Stored as ``RUN_DIR/format_preview.json``, sent to the
trackers as the table ``evalcast/format_preview`` and shown in the HTML report.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from evalcast.data.expert_set import ExpertSet
from evalcast.data.formatting import render_prompt
from evalcast.runs.store import RunStore

logger = logging.getLogger("evalcast")

TABLE = "evalcast/format_preview"
COLUMNS = ("task", "id", "prompt", "completion", "extracted", "answer", "verdict")


def format_preview(experts: ExpertSet, questions: Sequence[Mapping[str, Any]], step: int,
                   limit: int = 3) -> dict[str, Any]:
    """Up to ``limit`` scored anchor questions (``QuestionResult`` JSON), one task after another."""
    by_id = {r.id: r for r in experts.records}
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for q in sorted(questions, key=lambda q: str(q["id"])):
        if q["id"] in by_id:
            by_task.setdefault(str(q["task"]), []).append(q)
    chosen: list[Mapping[str, Any]] = []
    while len(chosen) < limit and any(by_task.values()):
        for task in sorted(by_task):
            if by_task[task] and len(chosen) < limit:
                chosen.append(by_task[task].pop(0))
    rows = []
    for q in chosen:
        record = by_id[q["id"]]
        rows.append({"task": record.task, "id": record.id,
                     "prompt": render_prompt(record.prompt, experts.tokenizer, experts.config.prompt_format),
                     "completion": q["completions"][0], "extracted": q["extracted"][0], "answer": record.answer,
                     "verdict": q["reasons"][0], "correct": bool(q["correct"][0])})
    return {"step": step, "rows": rows}


def preview_table(preview: Mapping[str, Any]) -> tuple[Sequence[str], list[list[Any]]]:
    """The preview as table columns and rows (texts as ``repr`` so whitespace and separators show)."""
    return COLUMNS, [[r["task"], r["id"], repr(r["prompt"]), repr(r["completion"]),
                      "–" if r["extracted"] is None else repr(r["extracted"]), repr(r["answer"]), r["verdict"]]
                     for r in preview["rows"]]


def record_preview(experts: ExpertSet, questions: Sequence[Mapping[str, Any]], step: int,
                   store: RunStore) -> tuple[Sequence[str], list[list[Any]]]:
    """Build the preview, write it to the run directory, log it; returns it as a tracker table."""
    preview = format_preview(experts, questions, step)
    store.write_preview(preview)
    log_preview(preview)
    return preview_table(preview)


def log_preview(preview: Mapping[str, Any]) -> None:
    lines = [f"evalcast format preview at step {preview['step']} (check prompt, extracted answer and verdict):"]
    for r in preview["rows"]:
        lines.append(f"  [{r['task']}] {r['id']}: prompt {r['prompt'][-60:]!r} -> completion {r['completion'][:60]!r}"
                     f" -> extracted {r['extracted']!r} vs answer {r['answer']!r}: {r['verdict']}")
    logger.info("\n".join(lines))
