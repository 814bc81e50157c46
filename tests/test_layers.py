"""The import graph of `digest` and `subscribers`: no cycles, and every import points
down the layers docs/architecture.md draws. Imports made only for type checking count:
a cycle through them is still a cycle in the design.

grimp (the graph library behind import-linter) reads the imports without running them.
"""

from __future__ import annotations

import grimp
import pytest

# Lowest first. A module belongs to the layer of its longest matching prefix, and may
# import modules of its own layer or of a lower one, never of a higher one.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground floor", ("digest.errors", "digest.files", "digest.config", "digest.db")),
    ("people", ("subscribers",)),
    ("core", ("digest",)),  # gather, editions, render, deliver, curate, models, ...
    ("App", ("digest.app",)),
    ("jobs", ("digest.schedule", "digest.sender", "digest.imports")),
    ("entry points", ("digest.cli", "digest.web", "digest.demo", "digest.__main__",
                      "digest.launch")),
]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("digest", "subscribers", exclude_type_checking_imports=False)


def layer_of(module: str) -> int:
    matches = [(len(prefix), index) for index, (_name, prefixes) in enumerate(LAYERS)
               for prefix in prefixes if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    imports = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(imports):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(imports[node]):
                work.append((node, i + 1))
                child = imports[node][i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if work:  # back in the parent: carry the low link up
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def where(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    lines = [d["line_number"] for d in graph.get_import_details(importer=importer,
                                                                imported=imported)]
    return f"{importer} imports {imported} (line {', '.join(map(str, lines)) or '?'})"


def test_the_modules_import_each_other_in_no_cycle(graph: grimp.ImportGraph) -> None:
    problems = []
    for component in cycles(graph):
        members = set(component)
        edges = [where(graph, m, t) for m in component
                 for t in sorted(graph.find_modules_directly_imported_by(m)) if t in members]
        problems.append("a cycle among " + ", ".join(component) + ":\n    "
                        + "\n    ".join(edges))
    assert not problems, "\n".join(problems)


def test_every_import_points_down_the_layers(graph: grimp.ImportGraph) -> None:
    upward = [
        f"{where(graph, m, t)}: {LAYERS[layer_of(m)][0]} may not import {LAYERS[layer_of(t)][0]}"
        for m in sorted(graph.modules)
        for t in sorted(graph.find_modules_directly_imported_by(m))
        if layer_of(t) > layer_of(m)
    ]
    assert not upward, "\n".join(upward)


def test_the_people_layer_knows_nothing_of_publishing(graph: grimp.ImportGraph) -> None:
    """`subscribers` imports only the ground floor of `digest`: lists, people and
    consent make sense without editions, sources or a sender."""
    allowed = set(LAYERS[0][1])
    reaching = [
        where(graph, m, t)
        for m in sorted(graph.modules) if m.split(".")[0] == "subscribers"
        for t in sorted(graph.find_modules_directly_imported_by(m))
        if t.split(".")[0] == "digest" and t not in allowed
    ]
    assert not reaching, "\n".join(reaching)


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above would pass on a graph it cannot read: show it finds one."""
    g = grimp.ImportGraph()
    for module in ("a", "a.x", "a.y", "a.z"):
        g.add_module(module)
    g.add_import(importer="a.x", imported="a.y")
    g.add_import(importer="a.y", imported="a.z")
    g.add_import(importer="a.z", imported="a.x")
    g.add_import(importer="a", imported="a.x")
    assert cycles(g) == [["a.x", "a.y", "a.z"]]
