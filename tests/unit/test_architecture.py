"""The package's shape, read from its source: subpackages in layers, no import cycle (imports inside functions
count), no private name imported across modules, short functions and modules, and every module importable on its
own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "mfti_lightning"
# a subpackage may import only from itself and the layers listed for it (cli, the entry points, from anything)
LAYERS = {
    "assets": set(),
    "core": {"assets"},
    "data": {"core", "assets"},
    "model": {"core", "assets"},
    "track": {"core", "assets", "eval"},
    "eval": {"core", "data", "model"},
    "train": {"core", "data", "model", "eval"},
    "tasks": {"core", "data", "model", "eval", "train", "track"},
    "launch": {"core", "data", "tasks", "train", "assets"},
    "cli": {"core", "data", "model", "eval", "train", "tasks", "track", "launch", "assets"},
}
MAX_FUNCTION_LINES = 40  # every function and method, nested ones included: ``def`` line to last line
MAX_MODULE_LINES = 400
# Exempt by module, because they draw with matplotlib: one function sets up one figure's axes, series, labels and
# legend in order, and cutting it into pieces scatters one picture over helpers that mean nothing alone. (Their
# numbers are computed elsewhere: figure_data, comparison_data, stats; track/figures only calls both, so it is held
# to the limit.)
FIGURE_DRAWING_MODULES = {"mfti_lightning.track.figure_drawing", "mfti_lightning.track.stat_figures"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> list[tuple[str, list[str], int]]:
    """``(imported module, names, line)`` for every import of the package in a module, at any depth."""
    out = []
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("mfti_lightning"):
            out.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("mfti_lightning")]
    return out


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for m in MODULES:
        for target, names, _ in imports_of(m):
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            for t in subs or [target]:
                if t != m and t in MODULES:
                    graph[m].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_counting_imports_inside_functions():
    assert cycles(edges()) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_subpackages_import_only_their_layers():
    wrong = []
    for m, targets in edges().items():
        sub = m.split(".")[1] if m.count(".") >= 1 else None
        if sub not in LAYERS:
            continue
        for t in targets:
            tsub = t.split(".")[1] if t.count(".") >= 1 else None
            if tsub and tsub != sub and tsub not in LAYERS[sub]:
                wrong.append(f"{m} -> {t}")
    assert wrong == []


# the tasks (what a console command runs) and the job frame every task runs in (run directory, checks before
# loading, input checks). Tasks share the frame and nothing else of each other: what two tasks share lives in a lower
# layer (eval/, model/, train/). Any other module of tasks/ is one task's phase (evaluate_trained: train's last).
TASKS = {"mfti_lightning.tasks.train", "mfti_lightning.tasks.evaluate"}
TASK_FRAME = {"mfti_lightning.tasks.job", "mfti_lightning.tasks.checks", "mfti_lightning.tasks.inputs"}


def test_no_task_imports_another_task():
    graph = edges()
    assert [f"{m} -> {t}" for m in TASKS for t in graph[m] if t in TASKS and t != m] == []
    phases = {m for m in graph if m.startswith("mfti_lightning.tasks.") and m not in TASKS | TASK_FRAME}
    assert [f"{m} -> {t}" for m in phases for t in graph[m] if t in TASKS] == []  # a phase imports no task
    importers = {p: sorted(m for m in graph if p in graph[m]) for p in phases}
    assert {p: len(users) for p, users in importers.items() if p != "mfti_lightning.tasks"} == {
        p: 1 for p in phases if p != "mfti_lightning.tasks"
    }, importers  # each phase belongs to one task


def test_the_task_frame_imports_no_task():
    graph = edges()
    wrong = [f"{m} -> {t}" for m in TASK_FRAME for t in graph[m] if t.startswith("mfti_lightning.tasks.")]
    assert [w for w in wrong if w.split(" -> ")[1] not in TASK_FRAME] == []


def test_no_private_name_imported_from_another_module():
    found = [
        f"{MODULES[m].relative_to(REPO)}:{line}: {target}.{n}"
        for m in MODULES
        for target, names, line in imports_of(m)
        for n in names
        if n.startswith("_") and target != m
    ]
    for test in sorted((REPO / "tests").rglob("*.py")) + sorted((REPO / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(test.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":  # the package's, or a test helper's
                found += [
                    f"{test.relative_to(REPO)}:{node.lineno}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_")
                ]
    assert found == []


def long_functions(module: str, source: str) -> list[tuple[str, int, int]]:
    """``(module.Class.function, line, length)`` of every function, method or nested function over
    :data:`MAX_FUNCTION_LINES` lines."""
    out = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{child.name}"
                n = child.end_lineno - child.lineno + 1
                if not isinstance(child, ast.ClassDef) and n > MAX_FUNCTION_LINES:
                    out.append((name, child.lineno, n))
                visit(child, name)
            else:
                visit(child, prefix)

    visit(ast.parse(source), module)
    return out


def test_no_function_longer_than_40_lines_outside_figure_drawing():
    long = [
        f"{MODULES[m].relative_to(REPO)}:{line}: {name} is {n} lines (at most {MAX_FUNCTION_LINES})"
        for m in MODULES
        if m not in FIGURE_DRAWING_MODULES
        for name, line, n in long_functions(m, MODULES[m].read_text())
    ]
    assert long == []


def test_the_length_check_finds_long_methods_and_nested_functions():
    def block(indent: int, n: int) -> str:
        return "".join(f"{' ' * indent}x{i} = {i}\n" for i in range(n))

    top = MAX_FUNCTION_LINES
    source = (
        ("def ok():\n" + block(4, top - 1))  # exactly the limit: lines 1 to top
        + ("def outer():\n    def inner():\n" + block(8, top) + "    return inner\n")
        + ("class C:\n    def method(self):\n" + block(8, top))
    )
    assert long_functions("m", source) == [
        ("m.outer", top + 1, top + 3),
        ("m.outer.inner", top + 2, top + 1),
        ("m.C.method", 2 * top + 5, top + 1),
    ]


def test_no_module_longer_than_400_lines():
    long = [
        f"{path.relative_to(REPO)}: {n} lines (at most {MAX_MODULE_LINES})"
        for path in MODULES.values()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert long == []


@pytest.mark.subprocess
@pytest.mark.timeout(300)
def test_every_module_imports_alone_and_in_reverse_order():
    names = sorted(MODULES) + ["hydra_plugins.mfti_lightning_launcher"]
    alone = "; ".join(f"subprocess.run([sys.executable, '-c', 'import {n}'], check=True)" for n in names)
    code = f"import subprocess, sys; {alone}"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=280, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    rev = "; ".join(f"import {n}" for n in reversed(names))
    p = subprocess.run([sys.executable, "-c", rev], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
