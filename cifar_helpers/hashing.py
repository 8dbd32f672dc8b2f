"""Short hashes that name things: runs, parameter sets, cache folders, data contents."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable

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
