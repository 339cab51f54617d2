"""The package's layering, read off its source with `ast` (issue 15): no import circle between
files, no arrow from a lower folder to a higher one, nothing but folders (and cli.py) at the top.

Every import counts, including the ones inside functions: a function-local import that only hides
a circle from Python's import machinery is still a circle in the design. The rules below are the
ones each folder's ``__init__.py`` states.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# folder of src/dualmind/ -> the folders it may import (besides itself). Lowest first.
ALLOWED: dict[str, set[str]] = {
    "sources": set(),
    "model": set(),
    "lexicon": {"sources"},
    "config": {"model"},
    "data": {"sources", "lexicon"},
    "plan": {"model", "lexicon", "config"},
    "checkpoint": {"model", "lexicon", "config", "data"},
    "adapters": {"model", "config", "checkpoint"},
    "distributed": {"model", "config", "plan", "checkpoint"},
}
ALLOWED["train"] = set(ALLOWED)
ALLOWED["evaluate"] = set(ALLOWED) - {"evaluate"}
ALLOWED["bridge"] = set(ALLOWED) - {"bridge"}
ALLOWED["viz"] = set(ALLOWED) - {"viz"}
TOP_FILES = {"__init__.py", "cli.py"}  # nothing imports cli.py: it imports the commands lazily


def module_names(src: Path, package: str = "dualmind") -> dict[str, Path]:
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(src: Path, package: str = "dualmind") -> list[tuple[str, str, int]]:
    """(importer, imported module, line) for every import of the package's own modules, at any
    depth of the file. `from pkg import name` counts as an import of pkg.name when that is a
    module, else of pkg."""
    modules = module_names(src, package)
    edges = []
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            else:
                continue
            for target in targets:
                if target == package or not target.startswith(package + "."):
                    continue  # the root package holds only __version__
                while target not in modules:  # `import dualmind.a.b.c` of a name: its module
                    target = target.rsplit(".", 1)[0]
                if target != mod:
                    edges.append((mod, target, node.lineno))
    return edges


def circles(edges: list[tuple[str, str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for a, b, _ in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def folder_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else "top"


def upward(edges: list[tuple[str, str, int]], modules: dict[str, Path]) -> list[str]:
    bad = []
    for a, b, line in edges:
        fa, fb = folder_of(a), folder_of(b)
        if fa == fb or fa == "top" and fb != "top":
            continue
        if fb == "top" or fb not in ALLOWED.get(fa, set()):
            bad.append(f"{modules[a].relative_to(SRC.parent) if SRC in modules[a].parents else a}"
                       f":{line}: {fa}/ imports {b} ({fb}/)")
    return bad


def test_no_import_circle_between_files():
    found = circles(imports(SRC))
    assert not found, "import circles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_arrow_from_a_lower_folder_to_a_higher_one():
    modules = module_names(SRC)
    assert {folder_of(m) for m in modules} - {"top"} <= set(ALLOWED), \
        "a folder of src/dualmind/ this test has no rule for: add it to ALLOWED"
    bad = upward(imports(SRC), modules)
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_the_top_level_holds_only_folders_and_the_cli():
    top = {p.name for p in (SRC / "dualmind").glob("*.py")}
    assert top == TOP_FILES


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_each_folder_says_its_job_in_its_init_and_re_exports_nothing(folder):
    tree = ast.parse((SRC / "dualmind" / folder / "__init__.py").read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree) or ""
    assert 2 <= len(doc.splitlines()) <= 3, f"{folder}/__init__.py: a 2-3 line docstring"
    assert len(tree.body) == 1, f"{folder}/__init__.py: only its docstring (callers import " \
                                "from the module that defines a name)"


def re_exports(src: Path) -> list[str]:
    """Imports of the package's own names with ruff's unused-import check (F401) silenced: an
    unused import kept on purpose is a re-export kept for an old path."""
    kept = []
    for path in sorted((src / "dualmind").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dualmind")
                    or isinstance(node, ast.ImportFrom) and node.level):
                span = lines[node.lineno - 1:node.end_lineno]
                if any("noqa" in line and "F401" in line for line in span):
                    kept.append(f"{path.relative_to(src)}:{node.lineno}")
    return kept


def test_no_name_is_kept_importable_only_as_a_re_export():
    kept = re_exports(SRC)
    assert not kept, f"unused imports of dualmind names kept (re-exports): {kept}"


def _top_level(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(names a module defines, names it imports from elsewhere), at module level."""
    defined, imported = set(), set()
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.ImportFrom):
            imported.update(a.asname or a.name for a in node.names)
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            stack.extend(ast.iter_child_nodes(node))
    return defined, imported - defined


def borrowed(src: Path, package: str = "dualmind", callers: list[Path] = ()) -> list[str]:
    """`from m import name` where m only imports name from elsewhere: callers import a name
    from the module that defines it, so no module is kept as a second address of another's.
    The package's own modules are checked, and ``callers`` (tests, benchmarks, scripts)."""
    modules = module_names(src, package)
    tops = {m: _top_level(ast.parse(p.read_text(encoding="utf-8"))) for m, p in modules.items()}
    found = []
    importers = [(m, p) for m, p in modules.items()] + [("", p) for p in callers]
    for mod, path in importers:
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = node.module or ""
            if node.level and not mod:
                continue  # a script's relative import: not the package's
            if node.level:
                anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base not in tops:
                continue
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    continue  # a submodule
                if alias.name in tops[base][1]:
                    where = path.relative_to(src.parent if mod == "" else src)
                    found.append(f"{where}:{node.lineno}: {alias.name} from {base}")
    return found


def test_names_are_imported_from_the_module_that_defines_them():
    repo = SRC.parent
    callers = [p for d in ("tests", "benchmarks", "scripts")
               for p in sorted((repo / d).rglob("*.py"))]
    found = borrowed(SRC, callers=callers + [repo / "train.py"])
    assert not found, "names imported through a module that does not define them:\n" + \
        "\n".join(found)


# ---- the checker itself catches what it is for (on a toy package) ---------------------------

def _toy(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / "dualmind" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_checker_sees_a_circle_hidden_in_a_function(tmp_path):
    src = _toy(tmp_path, {
        "__init__.py": "",
        "train/__init__.py": "",
        "train/a.py": "from dualmind.train.b import f\n",
        "train/b.py": "def f():\n    from dualmind.train import a\n    return a\n",
        "train/c.py": "from . import a\n",
    })
    assert circles(imports(src)) == [["dualmind.train.a", "dualmind.train.b"]]


def test_the_checker_sees_an_upward_arrow(tmp_path):
    src = _toy(tmp_path, {
        "__init__.py": "",
        "model/__init__.py": "",
        "model/core.py": "def f():\n    from dualmind.train.module import X\n",
        "train/__init__.py": "",
        "train/module.py": "from dualmind.model.core import f\nX = 1\n",
    })
    modules = module_names(src)
    bad = upward(imports(src), modules)
    assert len(bad) == 1 and "model/ imports dualmind.train.module (train/)" in bad[0]


def test_the_checker_sees_a_kept_re_export(tmp_path):
    src = _toy(tmp_path, {
        "__init__.py": "",
        "train/module.py": "from dualmind.checkpoint.meta import (  # noqa: F401 - re-exported\n"
                           "    check_lexicon,\n)\n",
        "train/loop.py": "import ray.data  # noqa: F401  (an optional dependency, not ours)\n",
    })
    assert re_exports(src) == ["dualmind/train/module.py:1"]


def test_the_checker_sees_a_name_imported_through_a_second_module(tmp_path):
    src = _toy(tmp_path, {
        "__init__.py": "",
        "data/__init__.py": "",
        "data/shards.py": "class ShardError(ValueError):\n    pass\n",
        "data/open.py": "from dualmind.data.shards import ShardError\n",
        "data/cli.py": "from .open import ShardError\nfrom . import shards\n",
    })
    assert borrowed(src) == ["dualmind/data/cli.py:1: ShardError from dualmind.data.open"]
