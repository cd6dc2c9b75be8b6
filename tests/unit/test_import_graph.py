"""The import graph of the project's packages, read from the source (ast), not by importing it.

Every `import` counts, including those inside functions (a lazy import is still a dependency).
The packages must form layers that read top to bottom, with no cycle anywhere:

    lessons, bench
         |
    minibert, minielmo
         |
    weights, pooling
         |
       torch

The model files import only torch and the standard library at the top (a `from_pretrained` may
reach weights/ lazily), and the library never imports the reference implementations.
"""

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Top to bottom: a package may import only packages of lower layers (and itself).
LAYERS = [("lessons", "bench"), ("minibert", "minielmo"), ("weights", "pooling")]
LAYER_OF = {package: depth for depth, packages in enumerate(LAYERS) for package in packages}
LIBRARY = ("minibert", "minielmo", "weights", "pooling")
MODEL_FILES = ("minibert.model", "minibert.config", "minielmo.bilm", "minielmo.config",
               "minielmo.characters", "minielmo.elmo", "minielmo.scalar_mix")
REFERENCES = ("transformers", "sentence_transformers", "allennlp")
# The one library module that may load a reference: `python -m minibert verify` exists to compare
# against transformers, when it is installed.
MAY_LOAD_REFERENCE = {"minibert.verify"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for package in LAYER_OF for path in sorted((REPO / package).rglob("*.py"))}


def imports(name: str) -> list[tuple[str, bool]]:
    """(imported module name, at module level?) for every import in module `name`; `from X import
    y` names X.y when that is a module of ours, else X. importlib.import_module("...") with a
    literal name counts as an import too."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package holding this module
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args and isinstance(node.args[0], ast.Constant)):
            names = [node.args[0].value]
        else:
            continue
        found += [(imported, id(node) in top_level) for imported in names]
    return found


def ours(imported: str) -> str | None:
    """The longest module of ours that `imported` names (or lies inside), else None."""
    while imported and imported not in MODULES:
        imported = imported.rpartition(".")[0]
    return imported or None


GRAPH = {name: {ours(m) for m, _ in imports(name) if ours(m) not in (None, name)} for name in MODULES}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or not."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_graph_is_read():
    assert {"minibert.model", "minielmo.bilm", "weights.common", "bench.run", "pooling.pooling"} <= set(MODULES)
    assert "weights.elmo_hdf5" in GRAPH["minielmo.bilm"]  # a lazy import inside from_files counts


def test_no_import_cycles():
    assert strongly_connected(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_packages_import_only_lower_layers():
    upward = sorted((name, imported) for name, targets in GRAPH.items() for imported in targets
                    if imported.split(".")[0] != name.split(".")[0]
                    and LAYER_OF[imported.split(".")[0]] <= LAYER_OF[name.split(".")[0]])
    assert upward == []


def test_model_files_import_only_torch_and_the_standard_library():
    for name in MODEL_FILES:
        package = name.split(".")[0]
        for imported, top_level in imports(name):
            root = imported.split(".")[0]
            allowed = {"torch", "__future__", package} | ({"weights"} if not top_level else set())
            assert root in allowed or root in sys.stdlib_module_names, (
                f"{name} imports {imported}" + ("" if top_level else " (inside a function)"))


def test_the_library_never_loads_a_reference_implementation():
    for name in MODULES:
        if name.split(".")[0] in LIBRARY and name not in MAY_LOAD_REFERENCE:
            loaded = [m for m, _ in imports(name) if m.split(".")[0] in REFERENCES]
            assert loaded == [], f"{name} imports {loaded}"
