"""The notebooks' metadata as the repository keeps it, under any Python.

A kernel reports its Python's version (`language_info.version`, "3.11.7"), and
JupyterLab writes what the kernel reports into the notebook it has open: a
notebook that stored another version shows as modified, and its next save
changes the file. So the committed notebooks store no version, and the
Jupyter server that `jupyter_setup` configures keeps it so with
`WorkbookContentsManager`: it fills in the server's Python version when it
reads a notebook (the version the kernel it registered reports, so JupyterLab
finds nothing to change) and takes it out again when it saves one.

`strip_python_version_from_file(path)` does the same for a notebook written
elsewhere (papermill writes the kernel's version into its output), such as the
executed notebooks kept under reference/.

Executed notebooks are committed and opened on other machines, so the folder
one machine keeps the repository in (`/work/main/...`) must not appear in them
either: `tidy_executed(path, log)`, which `make run` applies to every notebook
it executes, makes every path inside the repository relative to it (the way
`paths.shown_path` prints one) and takes the Python version out. It also points
the markdown's links (`[...](../docs/protocol.md)`, written from notebooks/) at
their files from the executed copy's folder, so that they still open there; a
copy outside the repository keeps them as written, since a link from there
back into the clone would spell out the machine's folders.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, MutableMapping

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

from cifar_helpers.core.files import atomic_write_text
from cifar_helpers.core.paths import NOTEBOOK_DIR, REPO_ROOT

KERNEL_NAME = "python3"
KERNEL_DISPLAY_NAME = "Python 3 (ipykernel)"
# Every committed notebook's metadata: what the setup registers, and what ipykernel reports about the
# language, less the version.
KERNELSPEC = {"display_name": KERNEL_DISPLAY_NAME, "language": "python", "name": KERNEL_NAME}
LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}
# What ipykernel reports as language_info.version: the running Python's, "3.11.7".
PYTHON_VERSION = sys.version.split()[0]


def _python_language_info(notebook: MutableMapping[str, Any]) -> MutableMapping[str, Any] | None:
    info = (notebook.get("metadata") or {}).get("language_info")
    return info if isinstance(info, MutableMapping) and info.get("name") == "python" else None


def strip_python_version(notebook: MutableMapping[str, Any]) -> bool:
    """Remove `metadata.language_info.version` of a Python notebook (a dict or NotebookNode) in place;
    True if there was one."""
    info = _python_language_info(notebook)
    return info is not None and info.pop("version", None) is not None


def add_python_version(notebook: MutableMapping[str, Any], version: str = PYTHON_VERSION) -> None:
    """Set `metadata.language_info.version` of a Python notebook that stores none, in place."""
    info = _python_language_info(notebook)
    if info is not None:
        info.setdefault("version", version)


def strip_python_version_from_file(path: str | os.PathLike) -> bool:
    """Rewrite the notebook at `path` without its Python version, atomically and in nbformat's layout
    (JupyterLab's and papermill's, which differ only in the final newline: kept as found); True if the
    file changed, False if it stored no version."""
    import nbformat

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    notebook = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    if not strip_python_version(notebook):
        return False
    atomic_write_text(path, nbformat.writes(notebook) + ("\n" if text.endswith("\n") else ""))
    return True


BINARY_OUTPUTS = ("image/png", "image/jpeg", "application/pdf")  # base64: never text to rewrite


def _root_pattern() -> re.Pattern:
    """The repository's folder as a path may spell it (resolved or not), as a whole path component."""
    roots = sorted({str(REPO_ROOT), os.path.realpath(REPO_ROOT)}, key=len, reverse=True)
    return re.compile("(?:" + "|".join(map(re.escape, roots)) + r")(/|(?![\w.-]))")


def relative_text(text: str) -> str:
    """`text` with every path inside the repository made relative to it (the folder itself reads ".")."""
    return _root_pattern().sub(lambda match: "" if match.group(1) else ".", text)


def relative_notebook(value: Any) -> Any:
    """A copy of an executed notebook (nbformat JSON, or any part of it) that names no machine's folder."""
    if isinstance(value, str):
        return relative_text(value)
    if isinstance(value, list):
        return [relative_notebook(item) for item in value]
    if isinstance(value, dict):
        return {key: item if key in BINARY_OUTPUTS else relative_notebook(item) for key, item in value.items()}
    return value


# A markdown link to a path (no scheme, not an anchor): "](" target, its "#fragment", ")".
_PATH_LINK = re.compile(r"(\]\()([^)\s#:]+)(#[^)\s]*)?(\))")


def rebased_links(markdown: str, written_in: Path, shown_in: Path) -> str:
    """`markdown`, written in the folder `written_in`, as shown from the folder `shown_in`: each link to a path
    that finds its file from `written_in` but not from `shown_in` now leads there from `shown_in`. Only inside
    the repository: from a folder outside it (or to a file outside it) the link would climb through this
    machine's folders (`../../../work/main/docs/...`), which executed notebooks never name; it stays as written."""
    written_in, shown_in, repository = written_in.resolve(), shown_in.resolve(), REPO_ROOT.resolve()
    if not shown_in.is_relative_to(repository):
        return markdown

    def rebase(match: re.Match) -> str:
        opening, target, fragment, closing = match.groups()
        file = written_in / target
        if (shown_in / target).exists() or not file.exists() or not file.resolve().is_relative_to(repository):
            return match.group(0)
        return f"{opening}{os.path.relpath(file, shown_in)}{fragment or ''}{closing}"

    return _PATH_LINK.sub(rebase, markdown)


def rebase_markdown_cells(notebook: MutableMapping[str, Any], written_in: Path, shown_in: Path) -> None:
    """`rebased_links` on every markdown cell of an nbformat notebook, in place."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            source = cell["source"]
            cell["source"] = rebased_links("".join(source) if isinstance(source, list) else source,
                                           written_in, shown_in)


def tidy_executed(notebook_path: Path, log_path: Path | None = None) -> None:
    """Rewrite an executed notebook, and its log, in place (atomically) as the repository keeps them:
    repository-relative paths, links that open from its folder, no Python version."""
    import nbformat

    notebook = nbformat.from_dict(relative_notebook(nbformat.read(notebook_path, as_version=nbformat.NO_CONVERT)))
    rebase_markdown_cells(notebook, NOTEBOOK_DIR, notebook_path.parent)
    strip_python_version(notebook)
    atomic_write_text(notebook_path, nbformat.writes(notebook) + "\n")
    if log_path is not None and log_path.exists():
        atomic_write_text(log_path, relative_text(log_path.read_text(encoding="utf-8")))


class WorkbookContentsManager(AsyncLargeFileManager):
    """Jupyter server's default contents manager, with the notebooks' Python version kept out of files:
    added when a notebook is read (the server's Python, which is the registered kernel's), removed when
    one is saved."""

    async def get(self, path, content=True, type=None, format=None, **kwargs):
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if model.get("type") == "notebook" and model.get("content") is not None:
            add_python_version(model["content"])
        return model

    async def save(self, model, path=""):
        if model.get("type") == "notebook" and isinstance(model.get("content"), MutableMapping):
            strip_python_version(model["content"])
        return await super().save(model, path)
