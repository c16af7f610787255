"""The package layering of ``docs/architecture.md``: imports only run downward, siblings in one layer do not
import each other, and no two packages import each other.

The graph is evalcast's real import graph (``grimp``), imports under ``TYPE_CHECKING`` included. A companion
test adds an upward import to a copy of the graph and sees the check report it.
"""

from __future__ import annotations

import copy

import grimp
import pytest

#: Highest first; a set is a layer of independent siblings (``docs/architecture.md`` explains each).
LAYERS: tuple[set[str], ...] = (
    {"cli"},
    {"demo"},
    {"offline", "callbacks", "check"},
    {"monitor", "report"},
    {"alerts", "probe"},
    {"runs", "trackers", "generate", "pairs", "tasks", "toy"},
    {"forecast", "stats", "proxy"},
    {"data"},
    {"errors", "validation"},
)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("evalcast", cache_dir=None)


def violations(graph: grimp.ImportGraph) -> list[str]:
    """Every import chain that runs up a layer or across siblings: ``"package -> package: first -> last"``."""
    found = graph.find_illegal_dependencies_for_layers(layers=[grimp.Layer(*layer) for layer in LAYERS],
                                                       containers={"evalcast"})
    return sorted(f"{d.importer} -> {d.imported}: {sorted(route.heads)} -> {sorted(route.tails)}"
                  for d in found for route in d.routes)


def test_every_package_has_a_layer(graph: grimp.ImportGraph) -> None:
    packages = {module.split(".")[1] for module in graph.modules if module.count(".") >= 1}
    placed = set().union(*LAYERS)
    assert packages == placed, f"not placed in a layer: {packages - placed}; gone: {placed - packages}"


def test_imports_only_run_downward(graph: grimp.ImportGraph) -> None:
    assert violations(graph) == []


def test_no_two_packages_import_each_other(graph: grimp.ImportGraph) -> None:
    edges = {(a.split(".")[1], b.split(".")[1]) for a in graph.modules if a.count(".")
             for b in graph.find_modules_directly_imported_by(a) if b.count(".")}
    assert sorted((a, b) for a, b in edges if a < b and (b, a) in edges) == []


def test_the_check_sees_an_upward_import_and_a_sibling_import(graph: grimp.ImportGraph) -> None:
    broken = copy.deepcopy(graph)
    broken.add_import(importer="evalcast.stats.forward", imported="evalcast.monitor.monitor")
    broken.add_import(importer="evalcast.runs.record", imported="evalcast.trackers.base")
    assert violations(broken) == [
        "evalcast.runs -> evalcast.trackers: ['evalcast.runs.record'] -> ['evalcast.trackers.base']",
        "evalcast.stats -> evalcast.monitor: ['evalcast.stats.forward'] -> ['evalcast.monitor.monitor']"]
    assert violations(graph) == []  # the copy was changed, not the real graph
