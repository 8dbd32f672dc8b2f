"""The data loader's errors and its one warning, and how any of its readers names a path it cannot read.

Every error says what happened and what to do in one message: `DatasetNotFoundError` (no data, none
downloaded), `CorruptDatasetError` (an unreadable file, broken structure), `DataFolderNotWritableError`
(the archive cannot be extracted where it is). `CIFAR10Warning`: the data load but differ from the official
release. `is_dir` and `unreadable` turn an operating-system error on a data path (a link loop, a broken link,
no permission) into a `CorruptDatasetError` naming that path.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from cifar_helpers.core.errors import WorkbookError, WorkbookWarning


class CIFAR10Error(WorkbookError, RuntimeError):
    """Base class of the data loader's errors."""


class DatasetNotFoundError(CIFAR10Error, FileNotFoundError):
    """No CIFAR-10 data in the folder, and none could be downloaded."""


class CorruptDatasetError(CIFAR10Error, ValueError):
    """A file is unreadable, or the data break CIFAR-10's structure."""


class DataFolderNotWritableError(CIFAR10Error, PermissionError):
    """The data folder must be written to (to extract the archive) and cannot be."""


class CIFAR10Warning(WorkbookWarning):
    """The data load but differ from the official release (one line per load)."""


def is_dir(path: Path) -> bool:
    """`path.is_dir()`, but a link loop or an unreadable path raises CorruptDatasetError, naming it."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as err:
        raise unreadable(err) from None


def unreadable(err: OSError) -> CorruptDatasetError:
    """The one-line error for a data file or folder that cannot be opened (`err.filename` its full path)."""
    path = str(err.filename)
    if err.errno == errno.ELOOP:
        return CorruptDatasetError(
            f"{path} is a symbolic link loop: it leads back to itself ({path} -> {_link_target(path)}). "
            "Point the link at the real file or folder, or delete it.")
    if err.errno == errno.ENOENT and os.path.islink(path):
        return CorruptDatasetError(
            f"{path} is a broken link: what it points to does not exist. Restore the file, or delete the link.")
    return CorruptDatasetError(
        f"Cannot read {path} ({err.strerror or err}). Check that it exists and that you may read it "
        "(its owner and permissions), or replace it.")


def _link_target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"
