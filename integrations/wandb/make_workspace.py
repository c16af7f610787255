"""Save evalcast's W&B workspace layout (``workspace.json``) as a saved workspace view.

    pip install wandb-workspaces      # not an evalcast dependency
    python integrations/wandb/make_workspace.py --entity ENTITY --project PROJECT --task gsm8k --task humaneval
    python integrations/wandb/make_workspace.py --from-url URL_OF_A_SAVED_VIEW --task gsm8k   # add the sections

Panels marked ``"per_task"`` in ``workspace.json`` are repeated for every ``--task`` with ``{task}``
filled in. Importing this file needs neither ``wandb`` nor ``wandb-workspaces``; they are imported only
when a workspace is built.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

LAYOUT = Path(__file__).with_name("workspace.json")


def load_layout(path: Path = LAYOUT) -> dict[str, Any]:
    """The plain layout description."""
    return json.loads(path.read_text())


def _fill(value: Any, task: str) -> Any:
    if isinstance(value, str):
        return value.replace("{task}", task)
    if isinstance(value, list):
        return [_fill(v, task) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, task) for k, v in value.items()}
    return value


def expand(layout: dict[str, Any], tasks: list[str]) -> list[dict[str, Any]]:
    """Sections with every ``per_task`` panel repeated once per task (``{task}`` filled in)."""
    sections = []
    for section in layout["sections"]:
        panels = []
        for panel in section["panels"]:
            panels += [_fill(panel, t) for t in tasks] if panel.get("per_task") else [panel]
        sections.append({**section, "panels": panels})
    return sections


def _panel(spec: dict[str, Any], x_axis: str) -> Any:
    import wandb_workspaces.reports.v2 as wr

    kind = spec["kind"]
    if kind == "line":
        return wr.LinePlot(title=spec["title"], x=spec.get("x", x_axis), metric_regex=spec["metric_regex"])
    if kind == "custom_chart":
        return wr.CustomChart(query={"summaryTable": {"tableKey": spec["table_key"]}}, chart_name=spec["chart"],
                              chart_fields=spec["fields"], chart_strings=spec["strings"])
    if kind == "media":
        return wr.MediaBrowser(title=spec["title"], media_keys=spec["keys"])
    if kind == "table":
        return wr.WeavePanelSummaryTable(table_name=spec["key"])
    raise ValueError(f"{LAYOUT}: unknown panel kind {kind!r} in panel {spec.get('title')!r}; "
                     "use line, custom_chart, media or table")


def build_sections(layout: dict[str, Any], tasks: list[str]) -> list[Any]:
    """``wandb_workspaces`` sections for ``tasks``, each with ``evalcast/step`` as its x-axis."""
    import wandb_workspaces.workspaces as ws

    x_axis = layout["x_axis"]
    return [ws.Section(name=s["name"], is_open=True, panels=[_panel(p, x_axis) for p in s["panels"]],
                       panel_settings=ws.SectionPanelSettings(x_axis=x_axis))
            for s in expand(layout, tasks)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Save the evalcast W&B workspace layout.")
    parser.add_argument("--entity", help="W&B entity (user or team) for a new view")
    parser.add_argument("--project", help="W&B project for a new view")
    parser.add_argument("--name", default=None, help="name of the new view (default: from workspace.json)")
    parser.add_argument("--from-url", help="URL of an existing saved view to add the evalcast sections to")
    parser.add_argument("--task", action="append", default=[], help="task with a forecast curve (repeatable)")
    args = parser.parse_args(argv)
    if not args.from_url and not (args.entity and args.project):
        parser.error("give --entity and --project for a new view, or --from-url for an existing one")
    try:
        import wandb_workspaces.workspaces as ws
    except ImportError:
        raise SystemExit("make_workspace.py needs the wandb-workspaces package: pip install wandb-workspaces") from None

    layout = load_layout()
    sections = build_sections(layout, args.task)
    if args.from_url:  # replace earlier evalcast sections, keep everything else as it is
        workspace = ws.Workspace.from_url(args.from_url)
        workspace.sections = [s for s in workspace.sections if not s.name.startswith("evalcast:")] + sections
    else:
        pinned = [f"summary:{_fill(k, t)}" for t in args.task for k in layout["pinned_summary"]]
        workspace = ws.Workspace(name=args.name or layout["name"], entity=args.entity, project=args.project,
                                 sections=sections, runset_settings=ws.RunsetSettings(pinned_columns=pinned))
    workspace.save()
    print(f"saved: {workspace.url}")


if __name__ == "__main__":
    main()
