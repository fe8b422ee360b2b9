"""The package's shape: no module imports one that imports it back (lazy imports in
functions count too), no private name is imported across modules, no source file is over 400
lines, no function or class named like a test; and the suite's own rules: no test module imports
another, none loads a script by path. Read from the source with ``ast``, so it holds for every
import, not only those run."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MODULES = {".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): p
           for p in (SRC / "tstam").rglob("*.py")}


def _imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(imported tstam module, names taken from it) for every import statement of one module."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("tstam")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name.split(".")[: len(name.split(".")) - (path.name != "__init__.py")]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.startswith("tstam"):
                out.append((base, [a.name for a in node.names]))
    return out


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    private = []
    for name, path in MODULES.items():
        for base, names in _imports(name, path):
            for n in names or [None]:
                target = f"{base}.{n}" if n and f"{base}.{n}" in MODULES else base
                if target in MODULES and target != name:
                    edges[name].add(target)
                if n and n.startswith("_") and not n.startswith("__") and target == base and base != name:
                    private.append(f"{name} imports {base}.{n}")
    return edges, private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_and_no_private_import_across_modules():
    edges, private = _graph()
    assert len(MODULES) > 60 and edges["tstam.checkpoint"] >= {"tstam.models", "tstam.flow", "tstam.files"}
    assert _cycles(edges) == []
    assert private == []


def test_the_graph_reader_sees_cycles_and_private_imports(tmp_path):
    """The checks above can fail: a cycle through a lazy import and a private import are found."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]
    tree = _imports("tstam.x.y", Path(__file__).parent / "helpers" / "realdata.py")  # a module with no tstam import
    assert tree == []


def test_no_source_file_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p in MODULES.values() if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_no_library_function_or_class_named_like_a_test():
    """pytest would collect such a name from every test module that imports it, and it reads like a test."""
    named = [f"{name}.{node.name}" for name, path in MODULES.items() for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")
             or isinstance(node, ast.ClassDef) and node.name.startswith("Test")]
    assert len(MODULES) > 60 and named == []


# --- the test suite: helpers shared only through tests/helpers, no script loaded by path ---------

TESTS = Path(__file__).resolve().parent
LOADERS = {"spec_from_file_location", "SourceFileLoader", "exec_module", "run_path", "run_module", "exec"}


def _suite_breaks(path: Path) -> list[str]:
    """In one file of the suite: imports of a test module or of runpy, and calls that load or run
    code by path or from a string (a script is run as a process instead)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            out += [f"{path.name}:{node.lineno} imports {n}" for n in names
                    if n.rsplit(".", 1)[-1].startswith("test_") or n == "runpy"]
        elif isinstance(node, ast.Call):
            f = node.func
            called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if called in LOADERS:
                out.append(f"{path.name}:{node.lineno} calls {called}")
    return out


def test_no_test_imports_another_test_module_or_loads_a_script():
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 50 and (TESTS / "helpers" / "__init__.py").is_file()
    assert [b for p in files for b in _suite_breaks(p)] == []


def test_the_suite_reader_sees_what_it_forbids(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import runpy\nfrom test_video import clip\nimport importlib.util\n"
                   "spec = importlib.util.spec_from_file_location('b', 'b.py')\nexec('x = 1')\n")
    assert sorted(b.split(" ", 1)[1] for b in _suite_breaks(bad)) == [
        "calls exec", "calls spec_from_file_location", "imports runpy", "imports test_video"]
