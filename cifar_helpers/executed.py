"""What an executed notebook keeps: outputs and metadata that name paths relative to the repository.

Executed notebooks are committed (the reference runs) and opened on other machines, so the folder one
machine keeps the repository in (`/work/main/...`) must not appear in them: every path inside the
repository is shown relative to it, the way `paths.shown_path` prints it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .paths import REPO_ROOT

BINARY_OUTPUTS = ("image/png", "image/jpeg", "application/pdf")  # base64: never text to rewrite


def _root_pattern() -> re.Pattern:
    """The repository's folder as a path may spell it (resolved or not), as a whole path component."""
    roots = sorted({str(REPO_ROOT), os.path.realpath(REPO_ROOT)}, key=len, reverse=True)
    return re.compile("(?:" + "|".join(map(re.escape, roots)) + r")(/|(?![\w.-]))")


def relative_text(text: str) -> str:
    """`text` with every path inside the repository made relative to it (the folder itself reads ".")."""
    return _root_pattern().sub(lambda match: "" if match.group(1) else ".", text)


def _relative(value: Any) -> Any:
    if isinstance(value, str):
        return relative_text(value)
    if isinstance(value, list):
        return [_relative(item) for item in value]
    if isinstance(value, dict):
        return {key: item if key in BINARY_OUTPUTS else _relative(item) for key, item in value.items()}
    return value


def relative_notebook(notebook: dict) -> dict:
    """A copy of an executed notebook (nbformat JSON) whose outputs and metadata name no machine's folder."""
    return _relative(notebook)


def make_paths_relative(notebook_path: Path, log_path: Path | None = None) -> None:
    """Rewrite an executed notebook, and its log, in place (atomically) with repository-relative paths."""
    import nbformat

    notebook = nbformat.read(notebook_path, as_version=nbformat.NO_CONVERT)
    relative = nbformat.from_dict(relative_notebook(notebook))
    atomic_write_text(notebook_path, nbformat.writes(relative) + "\n")
    if log_path is not None and log_path.exists():
        atomic_write_text(log_path, relative_text(log_path.read_text(encoding="utf-8")))
