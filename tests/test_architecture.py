"""The layout is the architecture: these tests read the package's source (with ``ast``)
and fail when the layers, the import graph or the size of the parts drift.

- The math (``linear``, ``families``, ``optim``) imports neither dask's scheduler
  (``distributed``) nor any layer above it: the reducer is passed in.
- Each layer imports only layers below it (the table ``LAYERS``), and no module imports
  itself back through others (no cycles).
- No module is longer than ``MAX_MODULE_LINES``; no function body longer than
  ``MAX_FUNCTION_LINES`` unless its docstring says why ("Long because ...").
"""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "elastic_nb"
#: "about 400 lines" (design rule), with a little room for a docstring.
MAX_MODULE_LINES = 420
MAX_FUNCTION_LINES = 50
#: Layer of each top-level part; a part may import parts of a lower layer (and itself).
LAYERS = {
    "_validation": 0,
    "checkpoint": 0,
    "linear": 1,
    "optim": 1,
    "families": 2,
    "engine": 2,
    "datasets": 2,
    "estimators": 3,
    "observe": 3,
    "policies": 4,
    "cluster": 5,
    "ui": 6,
    "cli": 7,
    "__main__": 8,
}
MATH = ("linear", "families", "optim")
#: What the math may import besides itself: the standard library and these.
MATH_THIRD_PARTY = {"numpy", "scipy"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """Absolute names of the modules ``name`` imports (anywhere in it, lazy ones too)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)
    return found


def part_of(name: str) -> str | None:
    """The top-level part (``linear``, ``ui``...) of an elastic_nb module; None for the
    package itself."""
    parts = name.split(".")
    return parts[1] if parts[0] == "elastic_nb" and len(parts) > 1 else None


GRAPH = {name: {i for i in imports_of(name) if i in MODULES} for name in MODULES}
THIRD_PARTY = {name: {i.split(".")[0] for i in imports_of(name)} for name in MODULES}


def test_every_part_has_a_layer():
    parts = {part_of(name) for name in MODULES} - {None}
    assert parts <= set(LAYERS), f"parts without a layer in LAYERS: {parts - set(LAYERS)}"


@pytest.mark.parametrize("name", [n for n in MODULES if part_of(n) in MATH])
def test_math_imports_no_scheduler_and_nothing_above_it(name):
    outside = THIRD_PARTY[name] - {"elastic_nb", "__future__"}
    import sys

    stdlib = set(sys.stdlib_module_names)
    assert outside - stdlib <= MATH_THIRD_PARTY, f"{name} imports {outside - stdlib}"
    for target in GRAPH[name]:
        part = part_of(target)
        assert part is None or part in MATH or LAYERS[part] == 0, f"{name} imports {target}"
        assert part is None or LAYERS[part] <= LAYERS[part_of(name)], f"{name} imports {target}"


@pytest.mark.parametrize("name", [n for n in MODULES if part_of(n) is not None])
def test_each_part_imports_only_lower_layers(name):
    mine = part_of(name)
    for target in GRAPH[name]:
        theirs = part_of(target)
        if theirs is None:  # the package itself: only its version string
            assert target == "elastic_nb", f"{name} imports {target}"
            continue
        assert theirs == mine or LAYERS[theirs] < LAYERS[mine], (
            f"{name} (layer {LAYERS[mine]}) imports {target} (layer {LAYERS[theirs]})"
        )


def find_cycles(graph) -> list:
    """Cycles of a directed graph ``{node: successors}`` (depth-first search)."""
    state, cycles = defaultdict(int), []  # 0 new, 1 on the stack, 2 done

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state[nxt] == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif state[nxt] == 0:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if state[name] == 0:
            visit(name, [name])
    return cycles


def test_no_import_cycles():
    cycles = find_cycles(GRAPH)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_are_short_enough_to_read_in_one_sitting(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines (> {MAX_MODULE_LINES})"


def long_functions(source: str):
    """Names and lengths of the functions in ``source`` longer than the rule allows."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            docstring = ast.get_docstring(node) or ""
            start = body[1].lineno if docstring and len(body) > 1 else body[0].lineno
            length = node.end_lineno - start + 1
            if length > MAX_FUNCTION_LINES and "long because" not in docstring.lower():
                yield f"{node.name} ({length} lines)"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_functions_are_short_or_say_why(name):
    too_long = list(long_functions(MODULES[name].read_text()))
    assert not too_long, f"{name}: {too_long}"


def test_the_checks_find_what_they_forbid():
    """The rules themselves, on made-up input: a cycle, a long function, an import."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES + 1))
    assert list(long_functions(f"def f():\n{body}\n")) == [f"f ({MAX_FUNCTION_LINES + 1} lines)"]
    excused = f'def f():\n    """Long because it must be."""\n{body}\n'
    assert list(long_functions(excused)) == []
    # the graph is read from the source: families.glm imports linear.scaling
    assert "elastic_nb.linear.scaling" in GRAPH["elastic_nb.families.glm"]
    assert "numpy" in THIRD_PARTY["elastic_nb.linear.gram"]


def test_what_workers_preload_exists():
    """The fork server imports these before it forks a worker; a missing module would be
    skipped silently (multiprocessing ignores preload ImportErrors), and every worker
    would import it again on its first task."""
    import importlib

    from elastic_nb.cluster import WORKER_PRELOAD

    for name in WORKER_PRELOAD:
        importlib.import_module(name)
    kernels = {"elastic_nb.engine", "elastic_nb.linear", "elastic_nb.families"}
    assert kernels <= set(WORKER_PRELOAD)
