"""A small, learnable stand-in for CIFAR-10, written in the official batch format.

Tests and the CPU smoke profile use it: `write_fake_cifar10(dir, n_train, n_test)`
writes `dir/cifar-10-batches-py/` with the official file names, keys and
Python 2 pickle flavour, so the loader is exercised on the real format.
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np

from cifar_helpers.core.files import atomic_path
from cifar_helpers.data.official import BATCHES_DIR, CIFAR10_CLASSES, GENERATED_BY_KEY, META_FILE, TEST_BATCH, TRAIN_BATCHES

class _Py2Pickler(pickle._Pickler):
    """Pickles like Python 2 did for the official batches: bytes as Python 2 `str`
    and arrays through numpy.core.multiarray._reconstruct, so that
    `encoding="bytes"` and `encoding="latin1"` read them as they read the official files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def _save_ndarray(self, array: np.ndarray) -> None:
        self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
        self.save((np.ndarray, (0,), b"b"))
        self.write(pickle.REDUCE)
        self.save((1, array.shape, array.dtype, False, np.ascontiguousarray(array).tobytes()))
        self.write(pickle.BUILD)

    dispatch[bytes] = _save_py2_str
    dispatch[np.ndarray] = _save_ndarray


def _write_py2_pickle(file: Path, obj) -> None:
    with atomic_path(file) as tmp, open(tmp, "wb") as handle:
        _Py2Pickler(handle, protocol=2).dump(obj)


# One colour and one pattern per class, so that a small model learns them fast.
_FAKE_COLOURS = np.array([
    [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]], dtype=np.float64)


def _fake_pattern(label: int, phase: np.ndarray) -> np.ndarray:
    """N x 32 x 32 copies of class `label`'s pattern in [0, 1], each shifted by its phase."""
    y, x = np.mgrid[0:32, 0:32] / 32.0
    y, x, p = y[None], x[None], phase[:, None, None]
    r = np.hypot(x - 0.5, y - 0.5)
    wave = [
        lambda: np.sin(2 * np.pi * (3 * y + p)),
        lambda: np.sin(2 * np.pi * (3 * x + p)),
        lambda: np.sin(2 * np.pi * (2 * (x + y) + p)),
        lambda: np.sign(np.sin(2 * np.pi * (2 * x + p)) * np.sin(2 * np.pi * 2 * y)),
        lambda: np.sin(2 * np.pi * (4 * r + p)),
        lambda: np.cos(np.pi * np.clip(3 * r + 0.2 * p, 0, 1)),
        lambda: np.cos(np.pi * (y + 0.2 * p)),
        lambda: np.cos(np.pi * (x + 0.2 * p)),
        lambda: np.sin(2 * np.pi * (2 * (x - y) + p)),
        lambda: np.maximum(np.cos(6 * np.pi * (x - 0.5)), np.cos(6 * np.pi * (y - 0.5))) + 0 * p,
    ][label]()
    return np.broadcast_to(wave, (len(phase), 32, 32)) * 0.5 + 0.5


def _fake_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    phase = rng.uniform(0, 1, n)
    patterns = np.empty((n, 32, 32))
    for k in range(10):
        chosen = labels == k
        patterns[chosen] = _fake_pattern(k, phase[chosen])
    colour = _FAKE_COLOURS[labels] + rng.normal(0, 20, (n, 3))
    images = colour[:, None, None, :] * (0.35 + 0.65 * patterns[..., None])
    images += rng.normal(0, 24, images.shape)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def write_fake_cifar10(data_dir: str | os.PathLike, n_train: int, n_test: int, seed: int = 0,
                       mark_generated: bool = False) -> Path:
    """Write a small learnable stand-in for CIFAR-10 in the official batch format.

    Creates `data_dir/cifar-10-batches-py/` with data_batch_1..5, test_batch
    and batches.meta, with the official keys and pickle flavour. Each class
    has its own colour and pattern plus noise; every class appears in both
    splits. Returns the batches folder.

    `mark_generated` adds a key to batches.meta that names this module: the
    loader then calls the data generated and gives no warning that its
    checksums and counts differ from the official release (the runner's
    `fake_data`). Unmarked, the files stand in for batches from elsewhere.
    """
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 10:
            raise ValueError(f"write_fake_cifar10: {name} must be an int >= 10 (one image per class), got {n!r}")
    folder = Path(data_dir) / BATCHES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def batch(label: str, labels: np.ndarray, first: int) -> dict:
        images = _fake_images(labels, rng)
        return {
            b"batch_label": label.encode(),
            b"labels": labels.tolist(),
            b"data": images.transpose(0, 3, 1, 2).reshape(len(labels), 3072),  # channel-planar rows
            b"filenames": [f"fake_{CIFAR10_CLASSES[y]}_s_{first + i:06d}.png".encode()
                           for i, y in enumerate(labels.tolist())],
        }

    train_labels = rng.permutation(np.arange(n_train) % 10)
    test_labels = rng.permutation(np.arange(n_test) % 10)
    first = 0
    for i, part in enumerate(np.array_split(train_labels, len(TRAIN_BATCHES)), start=1):
        _write_py2_pickle(folder / f"data_batch_{i}", batch(f"training batch {i} of 5", part, first))
        first += len(part)
    _write_py2_pickle(folder / TEST_BATCH, batch("testing batch 1 of 1", test_labels, first))
    meta = {
        b"label_names": [c.encode() for c in CIFAR10_CLASSES],
        b"num_cases_per_batch": int(-(-n_train // len(TRAIN_BATCHES))),
        b"num_vis": 3072,
    }
    if mark_generated:
        meta[GENERATED_BY_KEY.encode()] = __name__.encode()
    _write_py2_pickle(folder / META_FILE, meta)
    return folder
