"""The package's layout: a handful of layers, each importing only from the layers below it."""

import ast
import re
from pathlib import Path

import cifar_helpers

PACKAGE = Path(cifar_helpers.__file__).parent
LAYERS = ("core", "data", "models", "engine", "report", "workbook")  # bottom to top


def _imports(file: Path):
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)


def test_the_package_is_its_layers_and_a_facade():
    parts = sorted(p.name for p in PACKAGE.iterdir() if not p.name.startswith(("_", ".")) or p.name == "__init__.py")
    assert parts == sorted(("__init__.py", *LAYERS))


def test_every_layer_says_in_its_docstring_what_it_owns():
    for layer in LAYERS:
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
        assert doc and len(doc) > 40, layer


def test_no_import_runs_from_a_lower_layer_up_to_a_higher_one():
    upward = []
    for file in sorted(PACKAGE.rglob("*.py")):
        parts = file.relative_to(PACKAGE).parts
        if len(parts) < 2:
            continue
        mine = LAYERS.index(parts[0])
        for line, module in _imports(file):
            names = module.split(".")
            if names[0] == "cifar_helpers" and len(names) > 1 and LAYERS.index(names[1]) > mine:
                upward.append(f"{file.relative_to(PACKAGE)}:{line} imports {module}")
    assert not upward, "\n".join(upward)


def test_the_package_imports_itself_absolutely():
    relative = [f"{file.relative_to(PACKAGE)}:{node.lineno}" for file in PACKAGE.rglob("*.py")
                for node in ast.walk(ast.parse(file.read_text()))
                if isinstance(node, ast.ImportFrom) and node.level > 0]
    assert not relative, relative


def test_the_readme_layout_names_every_module_under_its_layer():
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    tree = readme.split("## Layout", 1)[1].split("```")[1]
    named: dict[str, set[str]] = {}
    layer = None
    for line in tree.splitlines():
        heading = line.strip().split(" ")[0]
        if line.startswith("  ") and not line.startswith("    ") and heading.rstrip("/") in LAYERS:
            layer = heading.rstrip("/")
        elif line.startswith("    ") and layer:
            named.setdefault(layer, set()).update(re.findall(r"[\w.]+\.(?:py|typ|j2)\b", line))
    for layer in LAYERS:
        modules = {p.name for p in (PACKAGE / layer).iterdir() if p.suffix in (".py", ".typ", ".j2")} - {"__init__.py"}
        assert modules <= named.get(layer, set()), f"{layer}/: {sorted(modules - named.get(layer, set()))}"
