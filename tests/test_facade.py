"""The notebooks' one door: `from cifar_helpers import ...`, cheap to open, and the notebooks use nothing else."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys

import pytest

import cifar_helpers
from cifar_helpers.core.paths import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def code_cells(path):
    """The source of each code cell but the parameters cell."""
    return ["".join(cell["source"]) for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]
            if cell["cell_type"] == "code" and "parameters" not in cell.get("metadata", {}).get("tags", [])]


def test_importing_the_package_loads_no_torch_and_shows_errors_as_messages_in_a_kernel():
    code = ("import sys\n"
            "from IPython.core.interactiveshell import InteractiveShell\n"
            "shell = InteractiveShell.instance()\n"
            "import cifar_helpers\n"
            "from cifar_helpers.core.errors import WorkbookError\n"
            "print(sorted({'torch', 'pandas', 'matplotlib'} & set(sys.modules)), WorkbookError in shell.custom_exceptions)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["[]", "True"]


def test_each_name_is_its_home_modules_own_object():
    for name in cifar_helpers.__all__:
        home = importlib.import_module(cifar_helpers._HOMES[name])
        assert getattr(cifar_helpers, name) is getattr(home, name), name
    assert set(cifar_helpers.__all__) <= set(dir(cifar_helpers))


def test_a_name_it_does_not_offer_is_an_attribute_error_and_the_layers_still_import():
    with pytest.raises(AttributeError, match="module 'cifar_helpers' has no attribute 'repo_path'"):
        cifar_helpers.repo_path  # noqa: B018
    from cifar_helpers import core  # a layer, not a facade name

    assert core.__name__ == "cifar_helpers.core"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_imports_only_from_the_facade_and_its_cells_hold_no_plumbing(path):
    for source in code_cells(path):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):  # torch is the student's own, for 07's model
                modules = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert all(m == "cifar_helpers" or m.split(".")[0] == "torch" for m in modules), ast.unparse(node)
            assert not isinstance(node, ast.If), f"a branch belongs in the library: {source!r}"
            assert not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)), f"a built path: {source!r}"
            assert getattr(node, "id", None) != "repo_path", source


def test_the_facade_offers_what_the_notebooks_call_and_nothing_more():
    imported = {alias.name for path in NOTEBOOKS for source in code_cells(path)
                for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)
                and node.module == "cifar_helpers" for alias in node.names}
    assert imported == set(cifar_helpers.__all__)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_nbvals_checks_are_cell_tags_not_a_comment_the_reader_sees(path):
    """nbval reads the tag `nbval-check-output` as it reads the comment `# NBVAL_CHECK_OUTPUT`; the tag stays
    out of the cell a professor reads and a student copies."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    assert any("nbval-check-output" in cell["metadata"].get("tags", []) for cell in cells)
    assert not [cell["id"] for cell in cells if "NBVAL" in "".join(cell["source"])]
