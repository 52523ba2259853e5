"""The package's import graph, read from the source (nothing is imported): no cycles, and the layers
of docs/architecture.md point down only.

Every `import` / `from ... import` counts, wherever it stands (module level, inside a function, under
`if TYPE_CHECKING`): an import deferred into a function is still a dependency, and a cycle hidden
that way is still a cycle.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = "billing_sync"
SOURCE = ROOT / "include" / PACKAGE
# The bottom layer: they import nothing of ours beyond one another (errors, names, csvfile, scrub:
# nothing).
BASE = {f"{PACKAGE}.{m}" for m in ("names", "errors", "config", "runtime", "csvfile", "scrub", "tenants")}


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SOURCE.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The modules of ours that `name` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            elif node.module and node.module.split(".")[0] == PACKAGE:
                target = node.module
            else:
                continue
            names = [f"{target}.{a.name}" for a in node.names]
            submodules = [n for n in names if n in known]
            yield from submodules
            if len(submodules) < len(names):  # a name defined in `target` itself
                yield target


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    edges = {}
    for name, path in mods.items():
        targets = set(imported(name, path, known)) - {name}
        unknown = targets - known
        assert not unknown, f"{name} imports modules that do not exist: {sorted(unknown)}"
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
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
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def reaches(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in edges[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


def test_the_walk_sees_imports_inside_functions():
    edges = graph()
    assert len(edges) > 15 and f"{PACKAGE}.steps" in edges
    # notify.build loads report only when an alert names the report folder: still an edge.
    assert f"{PACKAGE}.report" in edges[f"{PACKAGE}.notify.build"]


def test_no_import_cycles():
    found = cycles(graph())
    assert found == [], "import cycles: " + "; ".join(" ⇄ ".join(c) for c in found)


def test_the_bottom_layer_imports_nothing_else_of_ours():
    edges = graph()
    for name in sorted(BASE):
        assert edges[name] <= BASE, f"{name} imports {sorted(edges[name] - BASE)}"
    assert edges[f"{PACKAGE}.errors"] == set()
    assert edges[f"{PACKAGE}.names"] == set()
    assert edges[f"{PACKAGE}.csvfile"] == set()
    assert edges[f"{PACKAGE}.scrub"] == set()
    # the DAG files load it at every parse: names (which imports nothing) and the standard library
    assert edges[f"{PACKAGE}.tenants"] == {f"{PACKAGE}.names"}


def test_the_run_reference_module_is_light():
    edges = graph()
    assert reaches(edges, f"{PACKAGE}.runref") <= BASE


def test_report_and_notify_never_import_steps():
    edges = graph()
    for name in ("report", "notify"):
        assert f"{PACKAGE}.steps" not in reaches(edges, f"{PACKAGE}.{name}"), name


def test_notify_modules_import_one_way():
    """model ← render ← build; send knows the model only; the notifier joins them; none of them
    imports the package, which exposes the notifier only."""
    edges = graph()
    notify = f"{PACKAGE}.notify"
    allowed = {
        "model": set(),
        "render": {"model"},
        "build": {"model", "render"},
        "send": {"model"},
        "notifier": {"model", "render", "build", "send"},
    }
    for name, may in allowed.items():
        ours = {m.removeprefix(f"{notify}.") for m in edges[f"{notify}.{name}"] if m.startswith(f"{notify}.")}
        assert ours <= may, f"notify.{name} imports notify.{sorted(ours - may)}"
        assert notify not in edges[f"{notify}.{name}"], f"notify.{name} imports its own package"
    assert edges[notify] == {f"{notify}.notifier"}, "the package exposes the notifier only"


def _constants(path: Path) -> dict[str, object]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        t.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for t in node.targets
        if isinstance(t, ast.Name)
    }


def test_names_spelled_outside_the_package_agree_with_names():
    """The DAG file and the plugin import nothing of ours at parse but `tenants` (and through it
    `names`): the few names they spell again agree with the package's."""
    from billing_sync import names, runtime

    dag = _constants(ROOT / "dags" / "huntress_connectwise_billing_sync.py")
    assert dag["NEW_ORGANIZATIONS_ASSET"] == names.NEW_ORGANIZATIONS_ASSET
    assert _constants(ROOT / "plugins" / "billing_review.py")["MOUNT_PATH"] == runtime.REVIEW_MOUNT_PATH


# -- docs/architecture.md's tables: every module, its job, and the modules of ours it imports ---------
ARCHITECTURE = ROOT / "docs" / "architecture.md"
TABLE_ROW = re.compile(r"^\| `([\w.]+)` \| (.+?) \| (.+?) \|$")
# One row covers the Alembic revisions, which Alembic loads by file name.
REVISIONS = f"{PACKAGE}.store.migrations.versions"


def documented() -> dict[str, tuple[str, set[str]]]:
    """The tables' rows: module → (job, the modules of ours it imports), names resolved as the tables
    write them: `billing_sync.<name>` where that exists, otherwise within the module's own
    subpackage (`deps` in a review row is review.deps, `reconcile.money` is reconcile's money)."""
    known = set(modules()) | {REVISIONS}
    rows: dict[str, tuple[str, set[str]]] = {}
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        if not (m := TABLE_ROW.match(line)):
            continue
        name = PACKAGE if m[1] == PACKAGE else f"{PACKAGE}.{m[1]}"
        sub = ".".join(name.split(".")[:2])
        imports: set[str] = set()
        for word in m[3].split(","):
            word = word.strip()
            if word in ("—", ""):
                continue
            imports.add(f"{PACKAGE}.{word}" if f"{PACKAGE}.{word}" in known else f"{sub}.{word}")
        assert name not in rows, f"docs/architecture.md lists `{m[1]}` twice"
        rows[name] = (m[2], imports)
    return rows


def short(name: str, module: str) -> str:
    """How a table writes `name` in `module`'s row (the inverse of `documented`'s reading)."""
    tail = name.removeprefix(f"{PACKAGE}.")
    sub = ".".join(module.split(".")[:2]) + "."
    if name.startswith(sub) and f"{PACKAGE}.{name.removeprefix(sub)}" not in modules():
        return name.removeprefix(sub)
    return tail


def test_architecture_lists_every_module_with_the_imports_it_has():
    edges = {n: e for n, e in graph().items() if not n.startswith(REVISIONS + ".")}
    rows = documented()
    missing = sorted(set(edges) - set(rows))
    assert not missing, f"modules docs/architecture.md does not list: {missing}"
    gone = sorted(set(rows) - set(edges) - {REVISIONS})
    assert not gone, f"docs/architecture.md lists modules that do not exist: {gone}"
    wrong = {
        name.removeprefix(f"{PACKAGE}."): ", ".join(sorted(short(t, name) for t in edges[name])) or "—"
        for name in sorted(edges)
        if rows[name][1] != edges[name]
    }
    assert not wrong, "docs/architecture.md's imports column should read:\n" + "\n".join(
        f"  `{m}`: {imports}" for m, imports in wrong.items()
    )


def test_each_module_names_its_one_job_in_its_first_line():
    """PEP 257's summary line: the docstring's first line alone says what the module is for (the
    job docs/architecture.md's tables repeat); what follows a blank line says why and how."""
    unsaid = []
    for name, path in modules().items():
        lines = (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").splitlines()
        if not lines or not lines[0].strip() or (len(lines) > 1 and lines[1].strip()):
            unsaid.append(name)
    assert not unsaid, f"modules whose docstring has no one-line summary first: {unsaid}"


def test_no_test_module_imports_another():
    """Shared helpers live in tests/helpers/ and fixtures in conftest files: a test module imported
    by another runs its fixtures and constants in two places, and moving a test breaks a stranger."""
    tests = ROOT / "tests"
    found = []
    for path in sorted(tests.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [module or ""]
            for name in names:
                if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_"):
                    found.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not found, "\n".join(found)


def test_the_sandbox_server_imports_nothing_of_billing_sync():
    """The sandbox answers as the vendors do, not as our clients expect: only its in-memory sources
    (billing_sandbox.memory, an implementation of billing_sync.sources) may import the package."""
    sandbox = ROOT / "include" / "billing_sandbox"
    found = []
    for path in sorted(sandbox.rglob("*.py")):
        if path == sandbox / "memory.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            found += [f"{path.relative_to(sandbox)}: {n}" for n in names if n.split(".")[0] == PACKAGE]
    assert not found, found
