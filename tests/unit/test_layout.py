"""The package layout keeps its promises: no import cycles (function-local imports included, so
a cycle cannot hide inside a function) and no private name imported from another module."""
import ast
from pathlib import Path

import pinrig

ROOT = Path(pinrig.__file__).parent


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def walk_runtime(tree: ast.AST):
    """ast.walk, minus `if TYPE_CHECKING:` blocks (imports there never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) \
                    and child.test.id == "TYPE_CHECKING":
                todo.extend(child.orelse)
                continue
            todo.append(child)


def imports_of(path: Path, known: set) -> list:
    """(imported module, names) for every pinrig import that runs, at any depth."""
    out = []
    for node in walk_runtime(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "pinrig":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in known:
                    out.append((sub, None))             # `from pinrig.x import module`
                else:
                    out.append((node.module, alias.name))
        elif isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names if a.name.split(".")[0] == "pinrig"]
    return out


def test_no_relative_imports():
    bad = [str(p) for p in ROOT.rglob("*.py")
           if any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(ast.parse(p.read_text())))]
    assert not bad, f"use absolute pinrig.… imports: {bad}"


def test_no_import_cycles():
    mods = modules()
    graph = {m: sorted({t for t, _ in imports_of(p, set(mods)) if t in mods and t != m})
             for m, p in mods.items()}
    state: dict = {}
    cycles = []

    def visit(m, stack):
        state[m] = "active"
        for t in graph[m]:
            if state.get(t) == "active":
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack + [t])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_no_private_names_across_modules():
    mods = modules()
    bad = []
    for m, p in mods.items():
        for target, name in imports_of(p, set(mods)):
            if name and name.startswith("_") and not name.startswith("__") and target != m:
                bad.append(f"{m} imports {target}.{name}")
        tree = ast.parse(p.read_text())
        aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                   and n.module and n.module.startswith("pinrig") for a in n.names
                   if f"{n.module}.{a.name}" in mods}
        for n in ast.walk(tree):
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) \
                    and n.value.id in aliases and n.attr.startswith("_") \
                    and not n.attr.startswith("__"):
                bad.append(f"{m} uses {n.value.id}.{n.attr}")
    assert not bad, "\n".join(bad)


def test_every_subpackage_says_what_it_holds():
    for init in ROOT.rglob("__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init}: no docstring"
