"""The folder tree is the architecture: every module imports only from its own package or from packages
below it, no modules import each other in a circle (lazy imports inside functions count), and every
package says in its __init__ docstring what it owns and what it may import."""
import ast
import os

import pytest

import landscape

ROOT = os.path.dirname(landscape.__file__)
# Bottom to top. A module may import its own package and any package listed before it.
LAYERS = [
    {"errors", "imports", "host", "version"},  # shared leaves
    {"space"},
    {"curvature"},
    {"inputs"},
    {"files"},
    {"job"},
    {"plot"},
    {"training"},
    {"api"},
    {"cli"},
    {"__init__", "train", "render", "sharpness", "connect"},  # the package's face and the `python -m` entry points
]
LAYER = {name: level for level, names in enumerate(LAYERS) for name in names}
PACKAGES = sorted(name for name in LAYER if os.path.isdir(os.path.join(ROOT, name)))


def modules():
    """{'landscape.space.grid': path, ...} for every module of the package."""
    found = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = ["landscape"] + os.path.relpath(path, ROOT)[:-3].split(os.sep)
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()


def imported(module, path):
    """The landscape modules `module` imports, anywhere in its code."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:  # `from .x import f`: the module is .x, not .x.f
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


GRAPH = {module: imported(module, path) for module, path in MODULES.items()}


def layer_of(module):
    """The layer of a module: that of its top-level package or top-level module (the root is the face)."""
    top = module.split(".")[1] if module != "landscape" else "__init__"
    assert top in LAYER, f"{module} is in no layer: place it in LAYERS (and in the README's Code layout)"
    return LAYER[top]


def upward_imports(graph):
    """'a -> b' for every import of a module from a package not below its own (or of the package's face)."""
    found = []
    for module, targets in graph.items():
        for target in targets:
            same_package = target.split(".")[:2] == module.split(".")[:2]
            if target == "landscape" or (not same_package and layer_of(target) >= layer_of(module)):
                found.append(f"{module} -> {target}")
    return sorted(found)


def circles(graph):
    """The sets of modules that import each other in a circle (Tarjan's strongly connected components)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_every_import_runs_down_the_layers():
    assert not upward_imports(GRAPH), "imports that do not run down the layers:\n" + "\n".join(upward_imports(GRAPH))


def test_no_modules_import_each_other_in_a_circle():
    assert not circles(GRAPH)


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_says_what_it_owns_and_what_it_may_import(package):
    doc = ast.get_docstring(ast.parse(open(os.path.join(ROOT, package, "__init__.py")).read()))
    assert doc and "may import" in doc.lower(), f"{package}/__init__.py: say what it owns and what it may import"


def test_the_checks_see_relative_lazy_upward_and_circular_imports():
    assert "landscape.api" in GRAPH["landscape"]  # the root's lazy `from . import api`, inside a function
    assert "landscape.plot.page" in GRAPH["landscape.plot.render"]  # imported inside render_page
    assert "landscape.space.grid" in GRAPH["landscape.files.results"]  # `from ..space.grid import Grid`
    wrong = dict(GRAPH, **{"landscape.space.grid": GRAPH["landscape.space.grid"] | {"landscape.plot.render"}})
    assert upward_imports(wrong) == ["landscape.space.grid -> landscape.plot.render"]
    looped = dict(GRAPH, **{"landscape.errors": {"landscape.space.grid"}})  # grid imports errors: a circle
    assert ["landscape.errors", "landscape.space.grid"] in circles(looped)
