"""TensorBoard custom-scalars layout that groups evalcast's charts.

The layout is the dict ``SummaryWriter.add_custom_scalars`` takes:
``{category: {chart title: ["Multiline", [tag regex, ...]] | ["Margin", [value, lower, upper]]}}``.
Multiline charts match tags by (Python) regex, so they cover every task; Margin charts need three exact
tags, so each forecast gets its own (see :func:`margins_from_tags`). TensorBoard shows the layout written
last in a run directory, so rewriting it when new forecasts appear is safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Layout = dict[str, dict[str, list]]

_SUFFIX = r"(_[^/]*)?$"  # optional variant suffix: nll_rarity, top10_uncertainty ...

#: The task-independent part of the layout (also in integrations/tensorboard/layout.json).
BASE_LAYOUT: Layout = {
    "evalcast: proxies": {
        "likelihood (nll, bits per byte)": ["Multiline", [rf"^evalcast/.+/(nll|bpb){_SUFFIX}"]],
        "expert-token rank (top-k, rank)": [
            "Multiline", [rf"^evalcast/.+/(top1|top\d+|topk|rank|log_rank|recip_rank){_SUFFIX}"]],
        "confidence (prob, entropy, margin, surprisal)": [
            "Multiline", [rf"^evalcast/.+/(prob|entropy|margin|excess_surprisal){_SUFFIX}"]],
        "pair accuracy and margins": ["Multiline", [r"^evalcast/.+/pair_[^/]*$"]],
    },
    "evalcast: forecast": {
        "final forecast, all tasks": ["Multiline", [r"^evalcast/.+/forecast_final$", r"^evalcast/.+/final$"]],
    },
    "evalcast: probe": {
        "pass@1: probe vs anchors": ["Multiline", [r"^evalcast/.+/pass@1_(probe|anchor)$"]],
        "probe quality (AUROC, Brier)": ["Multiline", [r"^evalcast/.+/probe_(auroc|brier|mse|ece)[^/]*$"]],
    },
    "evalcast: cost": {
        "seconds and memory per save": ["Multiline", [r"^evalcast/cost/.*$"]],
    },
}

#: The interval drawn around each forecast in its Margin chart.
MARGIN_BAND = ("_lo80", "_hi80")


def margins_from_tags(tags: Iterable[str]) -> dict[str, tuple[str, str, str]]:
    """Margin charts for every forecast scalar whose 80% bounds were logged too.

    A value tag is ``.../forecast_final`` (logged by the monitor) or ``.../final`` (the end of a
    logged curve); its bounds are the same tag with ``_lo80`` / ``_hi80`` appended.
    """
    seen = set(tags)
    lo, hi = MARGIN_BAND
    return {tag: (tag, tag + lo, tag + hi) for tag in sorted(seen)
            if tag.endswith(("/forecast_final", "/final")) and tag + lo in seen and tag + hi in seen}


def evalcast_layout(margins: Mapping[str, tuple[str, str, str]] | None = None) -> Layout:
    """:data:`BASE_LAYOUT` plus one Margin chart (value with its 80% band) per entry of ``margins``."""
    layout = {category: {title: [kind, list(tags)] for title, (kind, tags) in charts.items()}
              for category, charts in BASE_LAYOUT.items()}
    for title, tags in (margins or {}).items():
        layout["evalcast: forecast"][f"{title} (80% interval)"] = ["Margin", list(tags)]
    return layout
