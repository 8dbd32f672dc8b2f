"""Short hashes that name things: runs, parameter sets, cache folders, data contents."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
from typing import Any, Iterable, Sequence

import numpy as np


def short_hash(payload: Any) -> str:
    """16 hex digits of the SHA-256 of `payload` as canonical JSON (sorted keys; str() for the rest)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def content_digest(arrays: Iterable[np.ndarray]) -> str:
    """A short hash of the arrays' dtypes, shapes and bytes."""
    digest = hashlib.blake2b(digest_size=8)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def files_digest(groups: Sequence[tuple[str, str, Sequence[str]]], workers: int = 8) -> str:
    """A short hash of files' contents: `groups` are (label, folder, file names in it), each file hashed
    with its label and name.

    Every byte is read, in one pass; the groups are read in threads, so that the reads of a
    cold disk overlap. An OSError names the file's (or folder's) full path."""
    with concurrent.futures.ThreadPoolExecutor(max(1, min(workers, len(groups)))) as pool:
        parts = list(pool.map(lambda group: _group_digest(*group), groups))
    return hashlib.blake2b(b"".join(parts), digest_size=8).hexdigest()


def _group_digest(label: str, folder: str, names: Sequence[str]) -> bytes:
    digest = hashlib.blake2b(label.encode() + b"\0", digest_size=16)
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    try:
        folder_fd = os.open(folder, os.O_RDONLY)
    except OSError as err:
        raise type(err)(err.errno, err.strerror, folder) from None
    try:
        for name in names:
            try:  # opened relative to the folder: no path to build and resolve per file
                fd = os.open(name, os.O_RDONLY, dir_fd=folder_fd)
            except OSError as err:
                raise type(err)(err.errno, err.strerror, os.path.join(folder, name)) from None
            file_digest = hashlib.blake2b(digest_size=16)
            try:
                while size := os.readv(fd, [buffer]):
                    file_digest.update(view[:size])
            finally:
                os.close(fd)
            digest.update(name.encode() + b"\0" + file_digest.digest())  # names hold no NUL: unambiguous
    finally:
        os.close(folder_fd)
    return digest.digest()
