"""Where things live: the repository root and the default folders.

Notebooks may be started from any working directory (JupyterLab, papermill,
nbval, Docker), so every relative path is taken from the repository root,
which is found from this package's own location.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cifar_helpers.core.errors import WorkbookError

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def repo_path(path: str | os.PathLike | None, default: str) -> Path:
    """Return `path` as an absolute path; relative paths start at the repo root.

    `None` or an empty string selects `default` (itself relative to the root).
    """
    chosen = Path(default) if path in (None, "") else Path(os.path.expanduser(str(path)))
    return chosen if chosen.is_absolute() else REPO_ROOT / chosen


def shown_path(path: str | os.PathLike) -> str:
    """`path` as a reader should see it: relative to the repository when inside it, so that committed outputs
    never name one machine's folders; anything outside the repository stays absolute."""
    path = Path(path)
    for candidate in (Path(os.path.abspath(path)), path.resolve()):  # a link inside the repository stays inside
        try:
            return candidate.relative_to(REPO_ROOT).as_posix()
        except ValueError:
            pass
    return str(path)


class DataDirNotFoundError(WorkbookError, FileNotFoundError):
    """DATA_DIR names a folder that does not exist."""


def default_data_dir() -> Path:
    """`$CIFAR10_DIR` when set, else `<repo>/data`."""
    return repo_path(os.environ.get("CIFAR10_DIR"), "data")


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data folder a notebook asked for, or the default one."""
    return default_data_dir() if path in (None, "") else repo_path(path, "data")


def require_data_dir(path: str | os.PathLike | None) -> Path:
    """The notebooks' DATA_DIR: None means the default (created on download);
    an explicit folder must exist, so a typo fails before any training."""
    if path in (None, ""):
        return default_data_dir()
    folder = data_dir(path)
    if not folder.is_dir():
        raise DataDirNotFoundError(
            f"DATA_DIR={str(path)!r} does not exist (looked at {folder}). Create it and put CIFAR-10 "
            "there (the official archive cifar-10-python.tar.gz, its extracted cifar-10-batches-py/, "
            "or a train/<class>/ test/<class>/ image tree), or set DATA_DIR=None to use "
            f"{default_data_dir()} ($CIFAR10_DIR overrides it)."
        )
    return folder


class FolderNotWritableError(WorkbookError, PermissionError):
    """An output folder that cannot be written; the message names it and the parameter that sets it."""


def require_writable(folder: str | os.PathLike, parameter: str) -> Path:
    """Create `folder` if needed and prove it takes a file; else say which parameter to change."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-", delete=True)
        probe.close()
    except OSError as err:
        raise FolderNotWritableError(
            f"{parameter}={str(folder)!r} cannot be written ({err.strerror or err}). Make it writable "
            f"(check its owner and permissions, and the free disk space), or set {parameter} to another "
            "folder.") from None
    return folder
