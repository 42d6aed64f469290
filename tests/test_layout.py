"""The layout of ``core/``: no import cycles and no private names used across modules (issue 17, part 6); and
``pages/`` holds only pages (their helpers are in ``ui/``).

Every module of ``core/`` is parsed with ``ast`` (nothing is imported, so this takes well under a second). The import
graph holds every import of a ``core`` module: at module level and inside functions, absolute and relative. Imports
under ``if TYPE_CHECKING:`` are left out: they never run. ``from pkg import name`` is an edge to ``pkg.name`` when that
is a module, else to ``pkg`` (its ``__init__``). Parent packages that Python initialises on the way are not edges:
``core/__init__.py`` and the packages' ``__init__`` files only re-export their own sub-modules.

A private name is one that starts with ``_`` and is not a dunder. Using it across modules means ``from m import _x``,
``m._x`` on a module bound by an import, or ``import m`` followed by ``m._x``.

Run it as a script for the report (``python tests/test_layout.py``): the cycles, the private names used across
modules, and how many ``core`` imports sit inside functions.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "core"

# Upward imports: a lower part of the lab that must not import a higher one, with the reason. execution/ runs any
# worker it is given (the engine passes its own in), so it never imports the engine; recipes build and run variants,
# and the recommendation reads their results, never the other way.
ENGINE = {"core.engine", "core.serving.jobs", "core.cli", "core.storage.history", "core.serving.playground"}
UPWARD: dict[str, set[str]] = {
    "core.execution": ENGINE,
    "core.recipes": ENGINE | {"core.reporting.recommend", "core.reporting", "core.charts"},
    "core.scenarios": ENGINE | {"core.reporting.recommend", "core.charts"},   # a scenario measures in the worker; the engine asks it
    "core.storage.history": {"core.charts"},   # storage: the HTML export that draws figures lives in core.charts.html_report
}

# Private names that may be used across modules, each with its reason. Keep this empty unless a reason is compelling.
PRIVATE_ALLOWED: dict[tuple[str, str, str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name, e.g. core.execution.launcher
    target: str  # dotted module name of the core module imported
    names: tuple[str, ...]  # names taken from it (from-imports), empty for `import x`
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def core_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, in_function: bool = False):
    """(node, in_function) for every node, leaving out ``if TYPE_CHECKING:`` blocks."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield other, in_function
                yield from _walk(other, in_function)
            continue
        inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield child, inner
        yield from _walk(child, inner)


def _resolve(importer: str, is_package: bool, module: str | None, level: int) -> str:
    if not level:
        return module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> tuple[list[Import], dict[str, str]]:
    """The imports of ``core`` modules in one module, and the local names bound to a whole ``core`` module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []
    bound: dict[str, str] = {}  # local name -> core module it stands for
    for node, in_function in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found.append(Import(name, alias.name, (), node.lineno, in_function))
                    if alias.asname:
                        bound[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(name, is_package, node.module, node.level)
            if source != PACKAGE and not source.startswith(PACKAGE + "."):
                continue
            plain = []
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in modules:
                    found.append(Import(name, sub, (), node.lineno, in_function))
                    bound[alias.asname or alias.name] = sub
                else:
                    plain.append(alias.name)
            if plain and source in modules:
                found.append(Import(name, source, tuple(plain), node.lineno, in_function))
    return found, bound


def import_graph() -> tuple[dict[str, set[str]], list[Import], list[tuple[str, int, str, str]]]:
    """(graph, every import, private uses) over ``core/``. A private use is (importer, line, module, name)."""
    modules = core_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    every: list[Import] = []
    private: list[tuple[str, int, str, str]] = []
    for name, path in modules.items():
        found, bound = imports_of(name, path, modules)
        every += found
        for imp in found:
            if imp.target != name:
                graph[name].add(imp.target)
            private += [(name, imp.line, imp.target, n) for n in imp.names if _private(n) and imp.target != name]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                target = _dotted_module(node.value, bound, modules)
                if target and target != name:
                    private.append((name, node.lineno, target, node.attr))
    return graph, every, sorted(set(private))


def _private(n: str) -> bool:
    return n.startswith("_") and not (n.startswith("__") and n.endswith("__"))


def _dotted_module(node: ast.AST, bound: dict[str, str], modules: dict[str, Path]) -> str | None:
    """The core module an expression such as ``history`` or ``core.execution.wire`` stands for, else None."""
    if isinstance(node, ast.Name):
        return bound.get(node.id) or (node.id if node.id in modules else None)
    if isinstance(node, ast.Attribute):
        parent = _dotted_module(node.value, bound, modules)
        if parent and f"{parent}.{node.attr}" in modules:
            return f"{parent}.{node.attr}"
    return None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted, as lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def unit(module: str) -> str:
    """The part of the layout a module belongs to: its sub-package (core.execution, core.recipes, ...) or itself."""
    return ".".join(module.split(".")[:2])


def within(module: str, names) -> bool:
    """Whether a module is one of ``names`` or inside one of them: a table names a sub-package (core.charts) or a
    single module, also one inside a sub-package (core.serving.jobs)."""
    return any(module == n or module.startswith(n + ".") for n in names)


def upward_imports(every: list[Import]) -> list[str]:
    """The imports that break UPWARD, as 'importer:line imports target' lines."""
    return sorted(f"{i.importer}:{i.line} imports {i.target}" for i in every
                  for lower, higher in UPWARD.items() if within(i.importer, (lower,)) and within(i.target, higher))


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between sub-packages and top-level modules: a cycle here (execution -> evaluate -> execution) is one
    between layers even when no two single modules import each other."""
    out: dict[str, set[str]] = {}
    for a, targets in graph.items():
        out.setdefault(unit(a), set()).update(unit(t) for t in targets if unit(t) != unit(a))
    return out


def cycle_edges(graph: dict[str, set[str]], component: list[str], every: list[Import]) -> list[str]:
    """The imports inside one cycle, as 'a -> b (line N, in a function)' lines, to say where to cut it."""
    members = set(component)
    return sorted({f"{i.importer} -> {i.target} (line {i.line}{', in a function' if i.in_function else ''})"
                   for i in every if unit(i.importer) in members and unit(i.target) in members and unit(i.importer) != unit(i.target)}
                  | {f"{i.importer} -> {i.target} (line {i.line}{', in a function' if i.in_function else ''})"
                     for i in every if i.importer in members and i.target in members and i.importer != i.target})


def test_core_has_no_import_cycles():
    graph, every, _ = import_graph()
    found = cycles(graph)
    assert not found, "import cycles in core/:\n" + "\n\n".join("\n".join(cycle_edges(graph, c, every)) for c in found)


def test_core_subpackages_have_no_import_cycles():
    graph, every, _ = import_graph()
    found = cycles(package_graph(graph))
    assert not found, "import cycles between core's sub-packages:\n" + "\n\n".join("\n".join(cycle_edges(graph, c, every)) for c in found)


def test_no_upward_imports():
    graph, every, _ = import_graph()
    bad = upward_imports(every)
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_private_names_across_modules():
    _, _, private = import_graph()
    bad = [p for p in private if (p[0], p[2], p[3]) not in PRIVATE_ALLOWED]
    assert not bad, "private names used across modules:\n" + "\n".join(f"{a}:{line} uses {m}.{n}" for a, line, m, n in bad)


def test_the_graph_sees_relative_absolute_and_function_level_imports():
    """The parser itself: the shapes of import it must see, checked on modules whose imports are known."""
    graph, every, _ = import_graph()
    assert "core.execution.wire" in graph["core.execution.local"] or any(
        i.importer == "core.execution.local" and i.target.startswith("core.") for i in every)
    assert any(i.in_function for i in every), "function-level imports are part of the graph"
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _resolve("core.execution.launcher", False, "engine.evaluate", 2) == "core.engine.evaluate"
    assert _resolve("core.tasks", True, "base", 1) == "core.tasks.base"
    assert within("core.charts.common", {"core.charts"}) and within("core.engine.evaluate", {"core.engine.evaluate"})
    assert not within("core.engine.evaluate_more", {"core.engine.evaluate"}) and not within("core.charts", {"core.charts.common"})


def family_folders() -> list[str]:
    """Every family folder of core/recipes (a package directory there)."""
    return sorted(p.parent.name for p in (ROOT / PACKAGE / "recipes").glob("*/__init__.py"))


def test_families_never_import_each_other():
    """A family is one folder: what two families share lives in a module of core/recipes itself (onnx_common,
    torch_common, weight_codec, onednn_isa, ...), so no family imports another one's folder."""
    _, every, _ = import_graph()
    families = family_folders()
    assert {"pytorch", "onnxrt", "openvino", "llamacpp", "genai", "weight_only"} <= set(families)

    def family(module: str) -> str | None:
        parts = module.split(".")
        return parts[2] if len(parts) > 2 and parts[:2] == ["core", "recipes"] and parts[2] in families else None

    crossing = sorted(f"{i.importer} -> {i.target} (line {i.line})" for i in every
                      if family(i.importer) and family(i.target) and family(i.importer) != family(i.target))
    assert not crossing, "families importing each other:\n" + "\n".join(crossing)


def test_no_module_aliases_for_old_import_paths():
    """Old module names are not kept alive by sys.modules aliases: each module is imported by its one name."""
    offenders = [str(p.relative_to(ROOT)) for p in sorted((ROOT / PACKAGE).rglob("*.py")) if "sys.modules[" in p.read_text(encoding="utf-8")
                 or "sys.modules.setdefault" in p.read_text(encoding="utf-8")]
    assert not offenders, f"sys.modules aliases in {offenders}"


def page_table() -> dict[str, str]:
    """ui/shared.py's PAGES (page key -> script path), read with ``ast``: the pages app.py navigates to."""
    tree = ast.parse((ROOT / "ui" / "shared.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "PAGES" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("ui/shared.py has no PAGES table")


def test_pages_holds_only_pages():
    """Streamlit lists every .py file in pages/ when navigation falls back to that folder: it holds the pages app.py
    navigates to and nothing else; their helpers live in ui/, and nothing imports a page as a module."""
    pages = page_table()
    found = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").iterdir() if p.name != "__pycache__")
    assert found == sorted(pages.values()), f"pages/ holds more than the pages: {sorted(set(found) - set(pages.values()))}"
    importers = []
    for path in [ROOT / "app.py", *sorted((ROOT / "ui").rglob("*.py")), *sorted((ROOT / "pages").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "pages" or n.startswith("pages.") for n in names):
                importers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not importers, f"pages imported as modules: {importers}"


def main() -> int:
    graph, every, private = import_graph()
    found = cycles(graph) + cycles(package_graph(graph))
    print(f"{len(graph)} modules, {len(every)} imports of core modules ({sum(i.in_function for i in every)} inside functions)")
    print(f"\n{len(found)} import cycles (between modules, then between sub-packages)")
    for c in found:
        print("  cycle: " + ", ".join(c))
        for line in cycle_edges(graph, c, every):
            print("    " + line)
    upward = upward_imports(every)
    print(f"\n{len(upward)} upward imports")
    for line in upward:
        print("  " + line)
    print(f"\n{len(private)} private names used across modules")
    for a, line, m, n in private:
        print(f"  {a}:{line} uses {m}.{n}{'  (allowed)' if (a, m, n) in PRIVATE_ALLOWED else ''}")
    return 1 if found or upward or [p for p in private if (p[0], p[2], p[3]) not in PRIVATE_ALLOWED] else 0


if __name__ == "__main__":
    sys.exit(main())
