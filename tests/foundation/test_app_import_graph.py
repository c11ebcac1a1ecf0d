"""No import cycle between apps: a lower app never imports a higher one, not even inside a function.

Every non-migration module of every app of ours is parsed with `ast`; each absolute import of another app (at
module level, inside a function, under `TYPE_CHECKING`) is an edge of the app -> app graph, and the graph must
be acyclic once the edges of `TOLERATED` are left out. A lower app that must reach a higher one does it
through a hook the higher app registers into at `AppConfig.ready` (`lineage/` hosts the tiny shared
registries), or by being handed plain data.

Nodes are the installed apps, with two refinements:

- `lineage.demo` is an app of its own (its own AppConfig): the demo story plays every app's services, so it
  sits on top of them all, while the rest of `lineage` (API errors, forms, htmx, CSV export, jobs,
  observability) is the shared floor every app stands on.
- The settings (`lineage/settings.py`, `lineage/settings_parts/`) are the composition root: they configure
  every app, are read by none of them as code, and are not scanned.

`TOLERATED` is a shrinking allow-list: each edge still closes a cycle and carries the reason it has not been
broken yet. An edge that no longer exists fails the test too, so the list can only get shorter.
"""

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "datanets", "models_registry", "attribution", "inference", "rewards", "governance",
        "insights", "notifications", "retrieval", "lineage")
SUBAPPS = ("lineage.demo",)  # packages inside an app that are installed as apps of their own
COMPOSITION_ROOT = ("lineage/settings.py", "lineage/settings_parts/")

# (importer, imported): why the edge still closes a cycle. Remove an entry when its edge goes.
TOLERATED: dict[tuple[str, str], str] = {
    ("lineage", "datanets"): "lineage.api's JSON depth guard and lineage.csv_export's formula neutralising are the "
                             "ingest engine's (datanets/ingest); they cannot move under lineage while importing "
                             "lineage starts Celery and Django, which an engine must not load",
    ("models_registry", "rewards"): "a model version's price is stored and entered with rewards' money primitives "
                                    "(rewards.fields, rewards.amounts, the admin's amount mixin), which migrations "
                                    "name; rewards settles fees per model version through models_registry.selectors",
    ("datanets", "rewards"): "the stake quota's message formats OPEN with rewards.amounts.format_open, a money "
                             "primitive that belongs on the shared floor with rewards.fields",
    ("attribution", "rewards"): "a probe's receipt and its fee are one durable transaction (rewards.services."
                                "fee_record, InsufficientCredit) and index builds hold harmful rows' earnings "
                                "(rewards.holds); rewards' settlement reads attribution's index fallback shares",
    ("inference", "retrieval"): "the OpenAI-compatible endpoint and the playground serve retrieval apps beside model "
                                "versions, and the model server embeds with retrieval's passage encoder; retrieval "
                                "answers through inference's client",
}


def node_of(module: str) -> str | None:
    """The app a dotted module belongs to (`datanets.selectors` -> datanets), or None when it is not ours."""
    for sub in SUBAPPS:
        if module == sub or module.startswith(sub + "."):
            return sub
    top = module.split(".")[0]
    return top if top in APPS else None


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the tree, wherever it sits."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            # `from lineage import demo` reaches the demo app, not lineage's floor
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names
                      if f"{node.module}.{alias.name}" in SUBAPPS]
    return found


def scanned_files():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            parts = relative.split("/")
            if "migrations" in parts or "tests" in parts or parts[-1].startswith("test_"):
                continue
            if relative.startswith(COMPOSITION_ROOT):
                continue
            yield relative


def app_graph() -> dict[tuple[str, str], list[str]]:
    """(importer, imported) -> ["path:line module", ...] for every import that crosses from one app to another."""
    edges = defaultdict(list)
    for relative in scanned_files():
        owner = node_of(relative.removesuffix(".py").removesuffix("/__init__").replace("/", "."))
        tree = ast.parse((ROOT / relative).read_text(encoding="utf-8"), filename=relative)
        for line, module in imported_modules(tree):
            target = node_of(module)
            if target and target != owner:
                edges[(owner, target)].append(f"{relative}:{line} {module}")
    return dict(edges)


def cycles(edges) -> list[list[str]]:
    """The strongly connected components with more than one app (Tarjan's algorithm)."""
    graph = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
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

    for node in sorted(set(graph) | {t for targets in graph.values() for t in targets}):
        if node not in index:
            visit(node)
    return sorted(found)


def describe(edges, component) -> str:
    lines = [" <-> ".join(component)]
    for (source, target), where in sorted(edges.items()):
        if source in component and target in component:
            lines += [f"  {source} -> {target}"] + [f"      {w}" for w in where]
    return "\n".join(lines)


def test_every_app_is_scanned():
    scanned = {node_of(f.removesuffix(".py").replace("/", ".")) for f in scanned_files()}
    assert set(APPS) | set(SUBAPPS) <= scanned


def test_the_app_graph_has_no_cycle_beyond_the_tolerated_edges():
    edges = app_graph()
    untolerated = {edge: where for edge, where in edges.items() if edge not in TOLERATED}
    found = cycles(untolerated)
    assert not found, "Apps import each other:\n" + "\n".join(describe(untolerated, c) for c in found)


def test_every_tolerated_edge_still_exists_and_still_closes_a_cycle():
    edges = app_graph()
    gone = sorted(edge for edge in TOLERATED if edge not in edges)
    assert not gone, f"Remove these from TOLERATED, they no longer exist: {gone}"
    in_cycles = {(s, t) for component in cycles(edges) for (s, t) in edges if s in component and t in component}
    no_longer_needed = sorted(edge for edge in TOLERATED if edge not in in_cycles)
    assert not no_longer_needed, f"Remove these from TOLERATED, they close no cycle now: {no_longer_needed}"


def test_the_scanner_sees_imports_inside_functions_and_type_checking_blocks():
    source = ("import datanets.selectors\n"
              "from typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from rewards.types import EpochState\n"
              "def f():\n    from notifications import services\n"
              "from lineage import demo\n"
              "from .models import X\n"
              "import numpy\n")
    assert sorted({node_of(m) for _, m in imported_modules(ast.parse(source))} - {None}) == [
        "datanets", "lineage", "lineage.demo", "notifications", "rewards"]


def test_cycles_are_strongly_connected_components_of_more_than_one_app():
    edges = {("a", "b"): [], ("b", "c"): [], ("c", "a"): [], ("c", "d"): [], ("d", "d"): []}
    assert cycles(edges) == [["a", "b", "c"]]


def test_the_higher_apps_registered_what_the_lower_ones_ask_at_start_up():
    """The hooks that replaced imports are filled by AppConfig.ready: none is left without its provider."""
    from lineage import hooks
    from notifications import datanet_access
    from notifications.builders import BUILDERS

    for single in (hooks.epoch_length, hooks.share_policy, hooks.stake_allows, hooks.stake_quota):
        assert callable(single.only()), single.name
    for several in (hooks.receipt_awaited, hooks.foreign_receipt, hooks.chain_reconcilers, hooks.chain_node_deployers):
        assert len(several.callbacks()) == 1, several.name
    assert set(BUILDERS) == {"contribution.validated", "version.published", "access_request.decided",
                             "fine_tune.finished", "epoch.closed"}
    assert set(datanet_access._answers) == {"datanets_managed_by", "datanet_permissions"}
