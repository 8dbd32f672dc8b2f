"""Write files so that a crash never leaves a half-written one behind.

Each writer writes to a temporary file in the target's folder, flushes it to
disk and renames it over the target: readers see the old file or the new
one, never a mix. The temporary file is held (`lock.held_while_written`) while
it is written, so `remove_leftovers` deletes those of killed writers only.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import WorkbookError
from .lock import held_while_written, remove_abandoned


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
