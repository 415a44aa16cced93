"""The package layout a newcomer relies on: subpackages by role with one-way dependencies
(the core never imports the upper layers), no import cycle, no oversized module."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "speechmapper_plugin"

# Lower layers never import higher ones; subpackages of one layer do not import each other.
LAYERS = {
    "utils": 0,
    "features": 1,
    "models": 1,
    "data": 2,
    "evaluation": 3,
    "training": 4,
    "datatools": 4,
    "tiny": 4,
    "inference": 5,
}
CORE = ("models", "features", "data")
MAX_LINES = 800


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def _imports(path):
    """Every ``speechmapper_plugin`` module a file imports, at module level or in a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; use absolute imports")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "speechmapper_plugin"
        ):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("speechmapper_plugin"))
    return found


def _graph():
    modules = dict(_modules())
    return {name: sorted(_imports(path) & set(modules) - {name}) for name, path in modules.items()}


def _subpackage(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or module.endswith(tuple(LAYERS)) else None


def find_cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph.get(node, ()):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_cycle_finder_finds_a_cycle():
    assert find_cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert find_cycles({"a": ["b"], "b": []}) == []


def test_no_import_cycle():
    assert find_cycles(_graph()) == []


def test_every_module_belongs_to_a_known_subpackage():
    for name, _ in _modules():
        parts = name.split(".")
        assert len(parts) == 1 or parts[1] in LAYERS, f"{name}: add its subpackage to LAYERS"


def test_lower_layers_never_import_upper_layers():
    bad = []
    for module, deps in _graph().items():
        source = _subpackage(module)
        for dep in deps:
            target = _subpackage(dep)
            if source is None or target is None or target == source:
                continue
            if LAYERS[target] >= LAYERS[source]:
                bad.append(f"{module} -> {dep}")
    assert not bad, "imports against the layering (docs/architecture.md):\n" + "\n".join(bad)


def test_core_imports_only_the_core_and_utils():
    for module, deps in _graph().items():
        if _subpackage(module) in CORE:
            upper = [d for d in deps if _subpackage(d) not in (*CORE, "utils", None)]
            assert not upper, f"{module} imports {upper}"


@pytest.mark.parametrize("name, path", list(_modules()), ids=lambda x: str(x))
def test_no_module_over_the_size_limit(name, path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by idea"


def test_every_module_is_in_the_architecture_index():
    """docs/architecture.md stays true when code moves: its module index names every module."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [
        str(path.relative_to(PACKAGE))
        for _, path in _modules()
        if path.name != "__init__.py" and f"`{path.relative_to(PACKAGE)}`" not in text
    ]
    assert not missing, f"add these modules to docs/architecture.md: {missing}"
