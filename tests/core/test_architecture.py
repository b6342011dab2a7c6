"""The package's shape: no import circles, imports at module top (except optional
dependencies), no private names imported across modules (read from the source with
``ast``, not by importing)."""

from __future__ import annotations

import ast
import pathlib

import galprof

ROOT = pathlib.Path(galprof.__file__).parent
#: optional dependencies: imported where they are used, so that galprof runs without them
OPTIONAL = {"dask", "pyro"}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = (path, ast.parse(path.read_text(), str(path)))
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str | None:
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))
    return node.module


def _imports(modules):
    """(importer, imported module, imported name or None, is top level, line) for every galprof import."""
    for module, (path, tree) in modules.items():
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(module, path.name == "__init__.py", node)
                if target and target.split(".")[0] == "galprof":
                    for alias in node.names:
                        sub = f"{target}.{alias.name}"
                        yield module, sub if sub in modules else target, alias.name, id(node) in top, node.lineno
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "galprof":
                        yield module, alias.name, None, id(node) in top, node.lineno


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_galprof_modules():
    modules = _modules()
    graph = {m: set() for m in modules}
    for importer, target, _, _, _ in _imports(modules):
        if target in modules and target != importer:
            graph[importer].add(target)
    assert _cycles(graph) == []


def test_imports_sit_at_module_top():
    inside = [f"{m}:{line} imports {target}" for m, target, _, top, line in _imports(_modules()) if not top]
    assert inside == []


def test_no_private_name_is_imported_across_modules():
    private = [f"{m}:{line} imports {name} from {target}" for m, target, name, _, line in _imports(_modules())
               if name is not None and name.startswith("_") and not name.startswith("__") and target != m]
    assert private == []


def test_other_imports_sit_at_module_top_unless_optional():
    inside = []
    for module, (path, tree) in _modules().items():
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and id(node) not in top:
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and id(node) not in top and not node.level:
                names = [node.module]
            else:
                continue
            inside += [f"{module}:{node.lineno} imports {n}" for n in names if n.split(".")[0] not in OPTIONAL]
    assert inside == []
