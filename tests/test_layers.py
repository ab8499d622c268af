"""The import graph of msgsvc keeps its layers: the hub knows no front, no wire format and no state;
each front is its own (what fronts share is in ``msgsvc/fronts/``); the state knows no front, nor the
fronts the state; no module imports the global reactor as it loads; and no modules import each other
in a circle.

Read from the source with :mod:`ast`, so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import msgsvc

ROOT = Path(msgsvc.__file__).parent

#: The fronts, each a module or a package of msgsvc.fronts; the other modules there are shared by all.
FRONTS = ("msgsvc.fronts.lines", "msgsvc.fronts.web", "msgsvc.fronts.irc")

#: What a front may take from another: the web front carries the line protocol over WebSocket, so each
#: WebSocket drives the line protocol's own ServerProtocol (not the line front's factory or listener).
SHARED_PROTOCOLS = {("msgsvc.fronts.web", "msgsvc.fronts.lines"): {"ServerProtocol"}}


#: What the state may import of the hub (see test_the_state_knows_only_the_hub_s_contracts).
STATE_MAY_IMPORT = {
    "msgsvc.hub.contracts",
    "msgsvc.hub.rules",
    "msgsvc.hub.ids",
    "msgsvc.hub.conversations",
    "msgsvc.hub.kept",
}


@dataclass(frozen=True)
class Import:
    importer: str  # the module that imports
    target: str  # the module imported (``from a import b`` is a.b when that is a module)
    names: frozenset[str]  # what ``from`` imports of it; empty for a module imported whole
    where: str  # "load" (as the module loads), "call" (in a function) or "typing" (under TYPE_CHECKING)
    line: int

    def __str__(self) -> str:
        what = f"{', '.join(sorted(self.names))} from {self.target}" if self.names else self.target
        return f"{self.importer} imports {what} ({self.where}, line {self.line})"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in ROOT.rglob("*.py")}


def imports_of(name: str) -> Iterator[Import]:
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def walk(node: ast.AST, where: str) -> Iterator[Import]:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                yield from walk(child, "typing")
            for child in node.orelse:
                yield from walk(child, where)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and where == "load":
            where = "call"
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, frozenset(), where, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            modules = {alias.name for alias in node.names if f"{base}.{alias.name}" in MODULES}
            for alias in sorted(modules):
                yield Import(name, f"{base}.{alias}", frozenset(), where, node.lineno)
            if names := frozenset(alias.name for alias in node.names) - modules:
                yield Import(name, base, names, where, node.lineno)
        for child in ast.iter_child_nodes(node):
            yield from walk(child, where)

    yield from walk(ast.parse(path.read_text(encoding="utf-8"), str(path)), "load")


IMPORTS = [found for name in sorted(MODULES) for found in imports_of(name)]


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def front_of(module: str) -> str | None:
    return next((front for front in FRONTS if within(module, front)), None)


class ImportGraphTests(SynchronousTestCase):
    def test_the_graph_is_read(self) -> None:
        """The walk finds imports of each kind (else every other test here would pass on nothing)."""
        found = {(i.importer, i.target, i.where) for i in IMPORTS}
        self.assertIn(("msgsvc.fronts.lines", "msgsvc.wire", "load"), found)
        self.assertIn(("msgsvc.hub.core", "msgsvc.hub.contracts", "load"), found)
        self.assertIn(("msgsvc.tap", "twisted.internet", "call"), found)
        self.assertIn(("msgsvc.hub.user", "msgsvc.hub.core", "typing"), found)
        self.assertIn("msgsvc.fronts.irc.session", MODULES)

    def test_the_hub_knows_only_itself(self) -> None:
        """msgsvc.hub imports nothing else of msgsvc (no front, wire format, state or accounts), not even
        for typing: they all import it."""
        wrong = [
            str(i)
            for i in IMPORTS
            if within(i.importer, "msgsvc.hub")
            and within(i.target, "msgsvc")
            and not within(i.target, "msgsvc.hub")
        ]
        self.assertEqual(wrong, [])

    def test_each_front_is_its_own(self) -> None:
        """No front imports another's modules; what they share is in msgsvc.fronts beside them."""
        wrong = []
        for i in IMPORTS:
            importer, target = front_of(i.importer), front_of(i.target)
            if importer is None or target is None or importer == target:
                continue
            allowed = SHARED_PROTOCOLS.get((importer, target), set())
            if not i.names or not i.names <= allowed:
                wrong.append(str(i))
        self.assertEqual(wrong, [])

    def test_the_state_knows_no_front(self) -> None:
        wrong = [
            str(i)
            for i in IMPORTS
            if within(i.importer, "msgsvc.state")
            and (within(i.target, "msgsvc.fronts") or i.target == "msgsvc.wire")
        ]
        self.assertEqual(wrong, [])

    def test_the_session_speaks_no_front_s_protocol(self) -> None:
        """What every front's connection shares (msgsvc.fronts.session) says nothing in a client protocol's
        words: it tells its front what was refused (the hub's Refusal, or its own Limit), and each front
        says it its own way.  So it imports nothing of the line protocol (msgsvc.wire) nor of any front."""
        wrong = [
            str(i)
            for i in IMPORTS
            if i.importer == "msgsvc.fronts.session"
            and (i.target == "msgsvc.wire" or front_of(i.target) is not None)
        ]
        self.assertEqual(wrong, [])

    def test_the_fronts_know_no_state(self) -> None:
        """The fronts reach the state only through the hub and the accounts, which say its failures
        as the hub's refusals (Refused UNAVAILABLE)."""
        wrong = [
            str(i) for i in IMPORTS if within(i.importer, "msgsvc.fronts") and within(i.target, "msgsvc.state")
        ]
        self.assertEqual(wrong, [])

    def test_the_state_knows_only_the_hub_s_contracts(self) -> None:
        """The state implements the hub's ports and calls it back through them (a cluster's
        NetworkListener): of the hub it imports the contracts, and the four modules that define the
        values crossing them, which it must compute as the hub does (one definition each, so a row's
        keys never drift from the hub's): name keys (rules), message ids (ids), conversation keys
        (conversations) and the messages the history is handed (kept).  None of the hub's behaviour
        (core, nodes, queue, history, events)."""
        wrong = [
            str(i)
            for i in IMPORTS
            if within(i.importer, "msgsvc.state")
            and within(i.target, "msgsvc.hub")
            and i.target not in STATE_MAY_IMPORT
        ]
        self.assertEqual(wrong, [])

    def test_no_module_imports_the_global_reactor_as_it_loads(self) -> None:
        """The reactor is injected; only what runs a program (a main function) may take the global one."""
        wrong = [
            str(i)
            for i in IMPORTS
            if i.where == "load"
            and (
                i.target == "twisted.internet.reactor"
                or (i.target == "twisted.internet" and "reactor" in i.names)
            )
        ]
        self.assertEqual(wrong, [])

    def test_no_import_cycles(self) -> None:
        """No modules import each other in a circle, as they load or in a call (imports for typing
        alone are not counted)."""
        graph: dict[str, set[str]] = {name: set() for name in MODULES}
        for i in IMPORTS:
            if i.where != "typing" and i.target in MODULES and i.target != i.importer:
                graph[i.importer].add(i.target)
        self.assertEqual([sorted(c) for c in strongly_connected(graph) if len(c) > 1], [])


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components of ``graph``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for after in sorted(graph[node]):
            if after not in index:
                visit(after)
                low[node] = min(low[node], low[after])
            elif after in on_stack:
                low[node] = min(low[node], index[after])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components
