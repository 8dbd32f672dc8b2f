"""One run per folder: a second run on the same checkpoint or output folder stops at once.

`exclusive(folder, what)` holds an advisory lock (`flock`) on `folder/.lock`
for as long as the block runs. The kernel drops the lock when the process
ends, however it ends (SIGKILL included), so a killed run never leaves the
folder locked. The file itself stays, and names the last holder for the
message a second run gets.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not guarded there
    fcntl = None

from .errors import WorkbookError

LOCK_NAME = ".lock"


class FolderInUseError(WorkbookError, RuntimeError):
    """Another process is running in this folder; the message names it."""


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "a process that left no details"


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike, what: str, fix: str) -> Iterator[None]:
    """Run the block as the only holder of `folder`; else raise FolderInUseError.

    `what` names the folder's use ("the checkpoints of dnn"), `fix` says what
    else the user can do ("use another CHECKPOINT_DIR").
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise FolderInUseError(
                f"{what} in {folder} are in use by another run ({_holder(path)}). Wait for it to finish or "
                f"stop it, or {fix}. Two runs in one folder would overwrite each other's files.") from None
        started = dt.datetime.now().isoformat(timespec="seconds")
        command = " ".join(sys.argv)[:200]
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()}, started {started}: {command}\n".encode())
        yield
    finally:
        os.close(fd)  # closing drops the flock
