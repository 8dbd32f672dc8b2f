"""Files that are never half-written, and folders that one run holds at a time.

Atomic writes: each writer writes to a temporary file in the target's folder, flushes it to
disk and renames it over the target: readers see the old file or the new
one, never a mix. The temporary file is held (`held_while_written`) while
it is written, so `remove_leftovers` deletes those of killed writers only.

Locks: `exclusive(folder, what)` holds an advisory lock (`flock`) on `folder/.lock`
for as long as the block runs. The kernel drops the lock when the process
ends, however it ends (SIGKILL included), so a killed run never leaves the
folder locked. The file itself stays, and names the last holder for the
message a second run gets.

A temporary file or folder that is being written is held the same way
(`held_while_written`), so `remove_abandoned` deletes only the leftovers of
writers that died, never the half-done work of one still running.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not guarded there
    fcntl = None

from cifar_helpers.core.errors import WorkbookError

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
def exclusive(folder: str | os.PathLike, what: str, fix: str, name: str = LOCK_NAME) -> Iterator[None]:
    """Run the block as the only holder of `folder` (of its lock file `name`); else raise FolderInUseError.

    `what` names the folder's use ("the checkpoints of dnn"), `fix` says what
    else the user can do ("use another CHECKPOINT_DIR").
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    path = folder / name
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


@contextlib.contextmanager
def held_while_written(path: str | os.PathLike) -> Iterator[None]:
    """Hold a lock on the temporary file or folder `path` (it must exist) while the block writes it."""
    if fcntl is None:
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # new: nobody else has it
        yield
    finally:
        os.close(fd)


def remove_abandoned(paths: Iterable[Path]) -> list[Path]:
    """Delete each temporary file or folder in `paths` that no live writer holds; return those deleted.

    One that cannot be deleted (a read-only folder) is left as it is."""
    removed = []
    if fcntl is None:
        return removed
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:  # gone meanwhile, or unreadable
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # a live writer's
            continue
        try:  # delete while holding the lock, so that no writer can take the path up meanwhile
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            removed.append(path)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


class WriteError(WorkbookError, OSError):
    """A file that could not be written; the message names it and what to check."""


TMP_SUFFIX = ".tmp"


def remove_leftovers(folder: str | os.PathLike, target_name: str = "*") -> list[Path]:
    """Delete the temporary files that writers killed midway left in `folder` (of `target_name` only, when
    given); those of writers still running stay. Returns the files deleted."""
    return remove_abandoned(Path(folder).glob(f".{target_name}.*{TMP_SUFFIX}"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` on success.

    An OSError (read-only folder, full disk) becomes a WriteError that names
    `target`; the file that was there before is left as it was."""
    target = Path(target)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        with held_while_written(tmp):
            yield tmp
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
            os.replace(tmp, target)
    except WriteError:
        raise
    except OSError as err:
        raise WriteError(f"could not write {target} ({err.strerror or err}). Is the disk full, or "
                         "the folder read-only? Free some space or make it writable, or choose another "
                         "folder; the previous file, if any, is intact") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def atomic_write(target: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp_path)` and move the result to `target` atomically."""
    with atomic_path(target) as tmp:
        write(tmp)
    return Path(target)


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    return atomic_write(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(target: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=False, allow_nan=True) + "\n")
