"""The README's "Measured" rows for the model ladder, rendered from ``ladder.json``'s ``headline``.

    .venv/bin/python benchmarks/ladder/readme_table.py [benchmarks/results/ladder.json]

Prints markdown rows (figure, evalcast's value, the baseline beside it, target, met or missed) and the
headline's notes. Every number comes from ``headline`` / ``headline_context``; nothing is computed here
but the met/missed verdicts.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rich.table import Table

from benchmarks.ladder.config import RESULTS

HORIZON_TARGETS = {"10": 0.10, "25": 0.05}
SETTINGS = {"loo": "other runs as references (leave one run out)", "smaller": "smaller runs only as references",
            "none": "no reference runs"}
HEADER = ("| figure | evalcast | baseline | target | |", "|---|---|---|---|---|")


def _f(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else "**met**" if ok else "**missed**"


def _delay(value: Any) -> str:
    return "not detected" if value is None else f"{value} save{'s' if value != 1 else ''}"


def _rows(out: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    h, ctx = out["headline"], out["headline_context"]
    rows = []
    p = ctx["probe"]
    n_held = len(h["heldout_runs"])
    auroc, err = h["probe_auroc_unseen_questions"], h["probe_pass1_error_unseen"]
    where = (f"{n_held} held-out runs, ≥ {p['unseen_questions_min']} questions each never labelled, "
             f"{p['scored_saves']} saves that were not anchors")
    rows.append((f"probe AUROC on questions it never trained on ({where})", _f(auroc),
                 f"task×level pass rate at the last anchor {_f(p['baseline_auroc'])}", "≥ 0.80",
                 _verdict(None if auroc is None else auroc >= 0.80)))
    rows.append(("probe pass@1 error on those questions (mean over saves)", _f(err, 3),
                 f"task×level pass rate {_f(p['baseline_pass1_error'], 3)}", "≤ 0.05",
                 _verdict(None if err is None else err <= 0.05)))
    r = ctx["ranking"]
    best, val = h["ranking_spearman_best_proxy"], h["ranking_spearman_val_loss"]
    rows.append((f"ranking {len(r['runs'] or [])} held-out runs at matched compute: Spearman with true pass@1, mean "
                 f"over {h['ranking_points']} compute values (a constant metric counts 0); proxy `{r['best_proxy']}` "
                 "chosen on the tuning runs", _f(best), f"validation loss (common text) {_f(val)}",
                 "≥ 0.9 and above the loss",
                 _verdict(None if best is None else best >= 0.9 and (val is None or best > val))))
    d = ctx.get("dropped_task")
    if d is not None:
        proxy, loss = h["drop_delay_saves_best_proxy"], h["drop_delay_saves_val_loss"]
        ok = None if proxy is None and loss is None else proxy is not None and (loss is None or proxy <= loss)
        rows.append((f"dropped task (`{d['task']}` true pass@1 {_f(d['true_pass'][0])} → {_f(d['true_pass'][1])}, "
                     f"`{d['run']}`): saves until `{d['task']}/{d['best_proxy']}` (chosen on the tuning drop run) "
                     f"leaves its pre-drop band", _delay(proxy),
                     f"validation loss {_delay(loss)}; training loss {_delay(d['train_loss_delay_saves'])}",
                     "no later than the validation loss", _verdict(ok)))
    for setting, horizons in (h["forecast"] or {}).items():
        if not isinstance(horizons, dict):
            continue
        for hz, f in sorted(horizons.items(), key=lambda kv: float(kv[0])):
            if not isinstance(f, dict):
                continue
            mae, loss = f.get("mae"), f.get("mae_loss_twostep")
            cap = HORIZON_TARGETS.get(hz)
            ok = None if mae is None else (cap is None or mae <= cap) and (loss is None or mae <= 0.5 * loss)
            target = (f"MAE ≤ {cap:.2f} and " if cap else "MAE ") + "≤ ½ loss two-step's"
            rows.append((f"forecast of final pass@1 from {hz}% of training, {SETTINGS.get(setting, setting)}: "
                         f"MAE (published {f.get('published')}/{f.get('cases')}; worst {_f(f.get('worst'))}; "
                         f"80% coverage {_f(f.get('coverage80'))}; refusals at last value "
                         f"{_f(f.get('mae_all_with_fallback'), 3)})", _f(mae, 3),
                         f"last value {_f(f.get('mae_last_value'), 3)}, loss two-step {_f(loss, 3)}",
                         target, _verdict(ok)))
    return rows


def rows(out: dict[str, Any]) -> list[str]:
    """The markdown table and the headline's notes (one line each)."""
    lines = [*HEADER, *("| " + " | ".join(row) + " |" for row in _rows(out))]
    return lines + [f"* {note}" for note in out["headline"]["notes"]]


def table(out: dict[str, Any]) -> Table:
    """The same rows for the console."""
    t = Table(title=f"model ladder ({out['preset']}): headline (held-out runs)")
    for name in ("figure", "evalcast", "baseline", "target", ""):
        t.add_column(name)
    for row in _rows(out):
        t.add_row(*(cell.replace("**", "") for cell in row))
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, nargs="?", default=RESULTS / "ladder.json")
    args = parser.parse_args()
    print("\n".join(rows(json.loads(args.path.read_text()))))


if __name__ == "__main__":
    main()
