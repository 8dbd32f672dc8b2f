"""The decoded-array cache: `<data folder>/.cache/cifar10-<key>/`, four .npy files and meta.json.

The key is a hash of the source files' bytes (with each file's name and class folder) and the cache format,
so a changed file, or another format, misses the cache and the data are decoded afresh. meta.json holds the
key, the format, the description (its folder as a mark: the same data read through another path name that
path), the caveats the load warns about, and the content digest. A cache that cannot be read is warned about
and rebuilt; one that cannot be written is warned about and the load goes on. `summary` reads the digest and
the counts without the images.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from cifar_helpers.core import paths
from cifar_helpers.core.files import held_while_written
from cifar_helpers.core.hashing import files_digest, short_hash
from cifar_helpers.data.checks import validate
from cifar_helpers.data.errors import CIFAR10Warning, unreadable

CACHE_DIR = ".cache"
_CACHE_FORMAT = 4  # bump when the cache's content or layout changes (2: the content digest; 3: a key of the bytes;
#   4: the description names no folder, so a copy read from another checkout names its own)
_FOLDER_MARK = "<data folder>"  # stands for the folder in a cached description
_ARRAY_NAMES = ("train_images", "train_labels", "test_images", "test_labels")


def location(root: Path, key: str) -> Path:
    """The cache folder of the data in `root` whose key is `key`."""
    return root / CACHE_DIR / f"cifar10-{key}"


def leftovers(root: Path) -> list[Path]:
    """The temporary folders of cache writes into `root`'s cache (a killed load's stay behind)."""
    return list((root / CACHE_DIR).glob(".cifar10-*"))


def content_key(layout: str, groups) -> str:
    """The cache key: a hash of the source files' bytes (`hashing.files_digest` groups), never of
    their names, sizes or times alone, which a swap or an edit can leave equal."""
    try:
        contents = files_digest(groups)
    except OSError as err:
        raise unreadable(err) from None
    return short_hash([_CACHE_FORMAT, layout, contents])


def _meta(folder: Path, key: str) -> dict:
    """The cache's meta.json; ValueError when it is of another format or key (another source)."""
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    if meta.get("format") != _CACHE_FORMAT or meta.get("key") != key:
        raise ValueError("it belongs to another source or format")
    return meta


def read(folder: Path, key: str, where: str):
    """The cached arrays, or None when there are none or they are unreadable (then warn)."""
    if not folder.is_dir():
        return None
    try:
        meta = _meta(folder, key)
        arrays = tuple(np.load(folder / f"{name}.npy", allow_pickle=False) for name in _ARRAY_NAMES)
        validate(arrays, str(folder))
        return arrays, str(meta["source"]), [str(c) for c in meta["caveats"]], str(meta["digest"])
    except (OSError, ValueError, KeyError, TypeError, EOFError) as err:
        warnings.warn(f"Ignoring the unreadable cache {folder} ({type(err).__name__}: {err}); "
                      f"rebuilding it from {where}.", CIFAR10Warning, stacklevel=3)
        return None


def write(folder: Path, key: str, arrays, description: str, caveats: list[str], digest: str) -> None:
    """Write the .npy files into a temporary folder, then rename it into place."""
    meta = {"format": _CACHE_FORMAT, "key": key, "source": description, "caveats": caveats, "digest": digest}
    tmp = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        with held_while_written(tmp):  # a later load removes it only if this one was killed
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the data folder may be shared
            for name, array in zip(_ARRAY_NAMES, arrays):
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            for file in tmp.iterdir():
                with open(file, "rb+") as handle:
                    os.fsync(handle.fileno())
            shutil.rmtree(folder, ignore_errors=True)  # an unreadable cache of the same key
            try:
                os.rename(tmp, folder)
            except OSError:
                if not (folder / "meta.json").is_file():  # else another process just wrote it
                    raise
        for stale in folder.parent.glob("cifar10-*"):  # one source per data folder: drop old caches
            if stale != folder:
                shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    except OSError as err:  # a read-only or full data folder must not stop a load
        warnings.warn(f"Could not write the cache {folder} ({err}); later loads will decode the "
                      f"data again.", CIFAR10Warning, stacklevel=3)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def summary(folder: Path, key: str) -> tuple[str, int, int] | None:
    """The digest and the training and test counts the cache in `folder` holds for `key`, read without the
    images; None when there is none (or it is unreadable: the next load rebuilds it)."""
    try:
        meta = _meta(folder, key)
        # mmap reads an .npy file's header only
        n_train, n_test = (len(np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False))
                           for name in ("train_labels", "test_labels"))
        return str(meta["digest"]), n_train, n_test
    except (OSError, ValueError, KeyError, TypeError):  # none, or unreadable: a load rebuilds it
        return None


def without_folder(description: str, folder: Path) -> str:
    """`description` with its folder as a mark: the same data read from another checkout names its own folder."""
    for shown in (paths.shown_path(folder), str(folder)):
        description = description.replace(f" at {shown}", f" at {_FOLDER_MARK}", 1)
    return description


def with_folder(description: str, folder: Path) -> str:
    """`description` with the folder mark replaced by `folder`, as it is shown."""
    return description.replace(_FOLDER_MARK, paths.shown_path(folder))

