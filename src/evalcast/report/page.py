"""``write_report``: a self-contained HTML page (and its PNG figures) from a run directory alone.

Every figure is embedded as a base64 ``data:`` URI and the style sheet is inline, so the page opens
offline, from anywhere, with no other file; the PNGs are written beside it for slides and trackers.
"""

from __future__ import annotations

import base64
import datetime
import html
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from evalcast.report.forecast_plots import evolution_figure, fan_figure, status_figure
from evalcast.report.plots import alerts_figure, cost_figure, png_bytes, probe_figure, proxies_figure
from evalcast.runs.history import ok_records
from evalcast.runs.preview import preview_table
from evalcast.runs.record import Record
from evalcast.runs.store import HISTORY, RunStore

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9em; } p.note { color: #666; font-style: italic; }
"""


class _Page:
    """Collects the HTML body and writes every figure as a PNG beside it."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.parts: list[str] = []
        self.figures: list[Path] = []

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def section(self, title: str) -> None:
        self.add(f"<h2>{html.escape(title)}</h2>")

    def note(self, text: str) -> None:
        self.add(f'<p class="note">{html.escape(text)}</p>')

    def figure(self, name: str, fig: Figure | None, caption: str, missing: str) -> None:
        """Embed ``fig`` (also written as ``name``.png), or say in ``missing`` why there is none."""
        if fig is None:
            if missing:
                self.note(missing)
            return
        data = png_bytes(fig)
        path = self.out_dir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
        path.write_bytes(data)
        self.figures.append(path)
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        self.add(f'<figure><img alt="{html.escape(caption)}" src="{uri}"><figcaption>{html.escape(caption)}'
                 "</figcaption></figure>")

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
        self.add(f"<table><tr>{head}</tr>{body}</table>")


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f'<td class="num">{"–" if not math.isfinite(v) else f"{v:.4g}"}</td>'
    if isinstance(v, int):
        return f'<td class="num">{v}</td>'
    return f"<td>{html.escape(str(v))}</td>"


def run_groups(history: Sequence[Record], meta: dict[str, Any] | None) -> tuple[list[str], list[str]]:
    """``(["all", *tasks], top-level domains)`` from the run's metadata, else from its metric names."""
    if meta and meta.get("tasks"):
        tasks, groups = list(meta["tasks"]), list(meta.get("groups", []))
    else:
        groups = sorted({k.split("/")[1] if not k.startswith("evalcast/domain/") else "/".join(k.split("/")[1:3])
                         for r in ok_records(history) for k in r.metrics if k.count("/") >= 2})
        tasks = [g for g in groups if g not in ("all", "cost") and not g.startswith("domain/")]
    return ["all", *tasks], [g for g in groups if g.startswith("domain/") and g.count("/") == 1]


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``report.html`` and its figures (PNG) for the run in ``run_dir``; returns the HTML path.

    out_dir: where to write (default ``RUN_DIR/report``).
    """
    run_dir = Path(run_dir)
    if not (run_dir / HISTORY).is_file():
        raise FileNotFoundError(f"{run_dir} is not an evalcast run directory: it has no {HISTORY}. Give the "
                                "directory the Monitor wrote to (its run_dir, by default <output_dir>/evalcast).")
    store = RunStore(run_dir)
    history, meta = store.history(), store.read_meta()
    if not ok_records(history):
        raise ValueError(f"{run_dir / HISTORY} holds no evaluated checkpoint ({len(history)} record(s), none ok); "
                         "there is nothing to report yet")
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    page = _Page(out)
    groups, domains = run_groups(history, meta)
    sections: list[Callable[[_Page, list[Record], list[str], list[str]], None]] = [
        _summary, _proxies, _forecasts, _probe, _alerts, _cost, _problems]
    for section in sections:
        section(page, history, groups, domains)
        if section is _summary:
            _preview(page, store.read_preview())
    title = f"evalcast report: {run_dir.resolve().name}"
    document = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
                f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(page.parts)}</body></html>")
    path = out / "report.html"
    path.write_text(document, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ sections
def _summary(page: _Page, history: list[Record], groups: list[str], domains: list[str]) -> None:
    ok = ok_records(history)
    first, last = ok[0], ok[-1]
    started = datetime.datetime.fromtimestamp(first.time).strftime("%Y-%m-%d %H:%M") if first.time else "?"
    page.table(["checkpoints", "skipped", "steps", "tokens seen (last)", "tasks", "first evaluation"],
               [[len(ok), len(history) - len(ok), f"{first.step} … {last.step}",
                 last.tokens_seen or "–", ", ".join(groups[1:]), started]])
    rows = []
    for group in groups:
        anchor = next((r for r in reversed(ok) if r.has(group, "pass@1_anchor")), None)
        latest = next(((r.step, r.forecasts[group]) for r in reversed(ok) if group in r.forecasts), None)
        if latest is None:
            forecast = "–"
        elif latest[1].forecast.ok and latest[1].forecast.final is not None:
            lo, hi = latest[1].forecast.interval80 or (math.nan, math.nan)
            forecast = f"{latest[1].forecast.final:.3f} (80%: {lo:.3f} … {hi:.3f}; step {latest[0]})"
        else:
            forecast = f"refused at step {latest[0]}: {latest[1].reason}"
        rows.append([group, last.value(group, "nll"), last.value(group, "top1"), last.value(group, "greedy_match"),
                     f"{anchor.value(group, 'pass@1_anchor'):.3f} (step {anchor.step})" if anchor else "–",
                     last.value(group, "pass@1_probe"), forecast])
    page.section(f"Latest checkpoint (step {last.step})")
    page.table(["group", "nll", "top1", "greedy_match", "pass@1 (last anchor)", "pass@1 (probe)",
                "forecast of final pass@1"], rows)


def _proxies(page: _Page, history: list[Record], groups: list[str], domains: list[str]) -> None:
    page.section("Proxy metrics over training")
    page.figure("proxies", proxies_figure(history, groups, title="per task"),
                "Teacher-forced proxy metrics on the expert solutions, per task.", "No proxy metrics were recorded.")
    page.section("Per-domain proxies")
    page.figure("domains", proxies_figure(history, domains, title="per domain") if domains else None,
                "The same proxies per domain (the first level of each record's domain path).",
                "The expert set has no domains (records without a domain field).")


def _forecasts(page: _Page, history: list[Record], groups: list[str], domains: list[str]) -> None:
    page.section("Forecasts of pass@1 at the end of the budget")
    for group in groups:
        page.figure(f"forecast_{group}", fan_figure(history, group),
                    f"{group}: the latest published forecast, its 80% and 95% intervals, the anchors it was fit on "
                    "and any measured after it.",
                    f"{group}: no forecast was published in this run (see the status below).")
        page.figure(f"forecast_evolution_{group}", evolution_figure(history, group),
                    f"{group}: the forecast of the final pass@1 at every checkpoint, with its intervals and the "
                    "baselines, beside the anchors measured so far.", "")
    page.figure("forecast_status", status_figure(history, groups),
                "Which checkpoints published a forecast, and why the others were refused.",
                "No forecast was attempted (forecasts off, or no checkpoint had one).")
    rows, counts = [], []
    for group in groups:
        attempts = [(r.step, tf) for r in ok_records(history) if (tf := r.forecasts.get(group)) is not None]
        if not attempts:
            continue
        step, tf = attempts[-1]
        lo, hi = tf.forecast.interval80 or (math.nan, math.nan)
        final = tf.forecast.final if tf.forecast.final is not None else math.nan
        rows.append([group, step, tf.status, final, lo, hi, tf.proxy.name if tf.proxy else "–", tf.reason or "–",
                     tf.message])
        tally = Counter("published" if t.forecast.ok else t.reason for _, t in attempts)
        counts.append([group, ", ".join(f"{k} × {n}" for k, n in tally.most_common())])
    if rows:
        page.table(["group", "step", "status", "final", "lo80", "hi80", "proxy", "reason", "message"], rows)
        page.table(["group", "outcomes over the run"], counts)


def _preview(page: _Page, preview: dict[str, Any] | None) -> None:
    page.section("Format preview (first anchor)")
    if preview is None:
        page.note("No anchor has run yet: the first one stores a few prompts as the model saw them, its completions, "
                  "the extracted answers and the verdicts.")
        return
    page.note(f"Step {preview['step']}: check that the prompt ends as the training text did, and that the scorer "
              "extracts the answer it should (texts shown with escapes, so a separator is visible).")
    page.table(*preview_table(preview))


def _probe(page: _Page, history: list[Record], groups: list[str], domains: list[str]) -> None:
    page.section("Probe quality over anchors")
    page.figure("probe", probe_figure(history, groups),
                "Top left: pass@1 predicted by the hidden-state probe at every checkpoint against the anchors' real "
                "pass@1. Other panels: at each anchor, the previous probe scored on the new labels (held-out "
                "questions).",
                "No anchors and no probe in this run (Monitor(anchors=AnchorConfig(...)) turns them on).")
    rows = [[r.step, (r.probe.reason if r.probe else "") or "ok", r.probe.message if r.probe else ""]
            for r in ok_records(history) if r.anchor is not None]
    if rows:
        page.table(["anchor step", "probe", "why"], rows)


def _alerts(page: _Page, history: list[Record], groups: list[str], domains: list[str]) -> None:
    page.section("Alerts")
    alerts = [a for r in ok_records(history) for a in r.alerts]
    page.figure("alerts", alerts_figure(history), "Alerts raised over the run, one row per rule.",
                "No alert was raised (or no alert rule was configured).")
    if alerts:
        page.table(["step", "level", "kind", "title", "text", "stop", "suggestion"],
                   [[a.step, a.level, a.kind, a.title, a.text, "yes" if a.stop_training else "no",
                     ", ".join(f"{g} {w:.2f}" for g, w in a.suggestion.items()) or "–"] for a in alerts])


def _cost(page: _Page, history: list[Record], groups: list[str], domains: list[str]) -> None:
    page.section("Cost of evaluation")
    ok = ok_records(history)
    seconds = [r.value("cost", "seconds") for r in ok]
    seconds = [s for s in seconds if math.isfinite(s)]
    page.figure("cost", cost_figure(history), "Wall seconds evalcast spent per checkpoint, by part.",
                "No cost was recorded.")
    if seconds:
        span = ok[-1].time - ok[0].time
        share = f"{sum(seconds) / span:.1%}" if span > 0 else "–"
        page.table(["evaluations", "total seconds", "mean seconds", "share of wall time (first to last checkpoint)"],
                   [[len(seconds), sum(seconds), sum(seconds) / len(seconds), share]])


def _problems(page: _Page, history: list[Record], groups: list[str], domains: list[str]) -> None:
    rows = [[r.step, "skipped", r.reason] for r in history if not r.ok]
    rows += [[r.step, f"{part} failed", message] for r in ok_records(history) for part, message in r.errors.items()]
    if rows:
        page.section("Skipped checkpoints and errors")
        page.table(["step", "what", "reason"], sorted(rows, key=lambda row: row[0]))
