"""docs/architecture.md's import rules, checked on every source file: the layers point one way."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTER = ("gpumix.bench", "gpumix.demo", "gpumix.tools", "gpumix.train")


def _imports(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            # `from gpumix import bench` imports gpumix.bench
            yield from (f"{node.module}.{a.name}" for a in node.names)


def _module(path):
    """The installed name of the source file at ``path`` (setup.py's package_dir mapping)."""
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    rel = rel[:-len(".__init__")] if rel.endswith(".__init__") else rel
    return rel if rel.startswith("gpumix") else "gpumix." + rel


def _layer(module):
    for outer in OUTER:
        if module == outer or module.startswith(outer + "."):
            return "bench" if outer == "gpumix.demo" else outer.split(".")[1]
    return "core"


def _sources():
    for folder in ("gpumix", "kernels", "pipelines", "train"):
        for base, _, files in os.walk(os.path.join(ROOT, folder)):
            yield from (os.path.join(base, f) for f in files if f.endswith(".py"))


def test_the_layers_point_one_way():
    sources = list(_sources())
    layers = {_layer(_module(p)) for p in sources}
    assert layers == {"core", "bench", "tools", "train"}  # the walk saw every layer
    wrong = []
    for path in sources:
        own = _layer(_module(path))
        for name in _imports(path):
            if name.startswith("gpumix.") and _layer(name) not in ("core", own):
                wrong.append((os.path.relpath(path, ROOT), name))
    assert wrong == []


def test_no_private_name_crosses_a_module_boundary():
    wrong = []
    for path in _sources():
        module = _module(path)
        package = module.rsplit(".", 1)[0] if not path.endswith("__init__.py") else module
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gpumix"):
                for alias in node.names:
                    if alias.name.startswith("_"):
                        wrong.append((module, f"{node.module}.{alias.name}"))
                private = [part for part in node.module.split(".") if part.startswith("_")]
                # a package-private module (pipelines._common) is for its own package only
                if private and not node.module.rsplit(".", 1)[0] == package:
                    wrong.append((module, node.module))
    assert wrong == []
