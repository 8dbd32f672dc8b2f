"""CIFAR-10 from whatever copy a machine has: load, check, cache, subset, describe.

`load_cifar10(data_dir)` looks in `data_dir` for, in this order:

1. ``cifar-10-batches-py/``: the official python batches (``data_dir`` may
   also be that folder itself);
2. ``cifar-10-python.tar.gz``: the official archive, extracted on first use;
3. ``train/<class>/*.png|jpg|jpeg`` and ``test/<class>/*``: an image-folder
   tree such as the JPEG copy described in docs/protocol.md, with ``data_dir`` its root.

With none there and ``download=True`` it downloads the official archive.
The decoded arrays are cached in ``data_dir/.cache/cifar10-<key>/`` (.npy files), so
later loads need not decode them again. The cache key is a hash of the source
files' contents (every byte, with each file's name and class folder), so any
change to the images or labels misses the cache and is decoded afresh; the
data's digest, which results and checkpoints record, is then that of the new
arrays. So every load reads every byte (in threads; the README gives the times).

Every load checks the structure: 32x32 RGB uint8 images (image files in other
modes are converted to RGB), labels 0..9 and all ten classes in both splits;
a failure raises `CorruptDatasetError`, as do image files of a type the loader
does not read (.webp, .bmp, ...), which would otherwise be left out unseen.
Counts other than the official 50,000/10,000 (5,000/1,000 per class), and
batch files whose md5 differs from the official release, still load: each
load then emits exactly one `CIFAR10Warning`, one line that says it all.
Images are NHWC uint8 tensors; labels are int64.

The loader's parts, each in its own module: `official.py` (the release: download, archive, batches),
`image_folders.py`, `cache.py`, `checks.py` (the structure and the counts) and `errors.py`; this module
chooses the source and puts them together, and holds what the notebooks do with the data.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from cifar_helpers.core import paths
from cifar_helpers.core.files import remove_abandoned
from cifar_helpers.core.hashing import content_digest
from cifar_helpers.data import cache, checks, image_folders, official
from cifar_helpers.data.errors import CIFAR10Warning, DatasetNotFoundError, is_dir


@dataclasses.dataclass(eq=False)
class CIFAR10:
    """The CIFAR-10 arrays: images uint8 N x 32 x 32 x 3 (NHWC), labels int64."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...] = official.CIFAR10_CLASSES
    source: str = ""
    # A hash of the images and labels themselves: a run made from other data never counts as the same run.
    digest: str = ""

    @functools.cached_property
    def normalization(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """(mean, std) per channel of the training images, in [0, 1] units."""
        return channel_stats(self.train_images)

    def __repr__(self) -> str:
        return (f"CIFAR10(train={len(self.train_labels)}, test={len(self.test_labels)}, "
                f"source={self.source!r})")


# --------------------------------------------------------------------------- loading


def load_cifar10(data_dir: str | os.PathLike | None = None, download: bool = True) -> CIFAR10:
    """Load CIFAR-10 from `data_dir` (see the module docstring for the layouts).

    `data_dir` None means `paths.default_data_dir()` (`$CIFAR10_DIR`, else
    `<repo>/data`); a relative path starts at the repository root.

    Raises `DatasetNotFoundError` when no layout is there and no download is
    possible, `CorruptDatasetError` for unreadable files or broken structure.
    Emits one `CIFAR10Warning` line when the counts differ from the official
    ones or the batch files' md5 differ from the official release.
    """
    root = paths.data_dir(data_dir)
    remove_abandoned([*official.leftovers(root), *cache.leftovers(root)])  # of loads that were killed
    source = _find_source(root, download)
    cache_folder = cache.location(root, source.key)

    cached = cache.read(cache_folder, source.key, source.where)
    if cached is not None:
        arrays, description, caveats, digest = cached
    else:
        arrays, description, caveats = source.decode()
        checks.validate(arrays, source.where)
        digest = content_digest(arrays)
        description = cache.without_folder(description, source.path)  # a first load reads as a cached one
        cache.write(cache_folder, source.key, arrays, description, caveats, digest)
    description = cache.with_folder(description, source.path)

    if not description.startswith(official.GENERATED_SOURCE):
        caveats = caveats + checks.count_caveats(arrays)
    if caveats:
        warnings.warn(f"CIFAR-10 in {source.where}: " + "; ".join(caveats) + ".",
                      CIFAR10Warning, stacklevel=2)
    train_x, train_y, test_x, test_y = (torch.from_numpy(a) for a in arrays)
    return CIFAR10(train_x, train_y, test_x, test_y, official.CIFAR10_CLASSES, description, digest)


@dataclasses.dataclass(frozen=True)
class DataSummary:
    """What a load of a data folder gives, less its images: the content digest that results and
    checkpoints record, and the number of training and test images."""

    digest: str
    n_train: int
    n_test: int


def summarize_cifar10(data_dir: str | os.PathLike | None = None) -> DataSummary:
    """The digest and counts `load_cifar10(data_dir, download=False)` gives, without decoding or reading
    the images when the loader's cache holds them: its record and the arrays' headers are read instead.

    The cache is found by its key, which reads every source file's bytes, so a changed file is never
    taken for the cached one. Data never loaded before are loaded (decoded once, into the cache that the
    next load reads). Raises, and warns, as `load_cifar10` does."""
    root = paths.data_dir(data_dir)
    source = _find_source(root, download=False)
    cached = cache.summary(cache.location(root, source.key), source.key)
    if cached is not None:
        return DataSummary(*cached)
    data = load_cifar10(root, download=False)
    return DataSummary(data.digest, len(data.train_labels), len(data.test_labels))


@dataclasses.dataclass
class _Source:
    layout: str  # "batches" or "images"
    path: Path
    key: str
    class_folders: list[image_folders.ClassFolder] = dataclasses.field(default_factory=list)  # image folders only

    @property
    def where(self) -> str:
        return str(self.path)

    def decode(self):
        if self.layout == "batches":
            return official.read_batches(self.path)
        return image_folders.decode(self.path, self.class_folders)


def _find_source(root: Path, download: bool) -> _Source:
    is_dir(root)  # a link loop is named, not taken for a missing folder
    batches = official.batches_dir(root)
    if batches is None and (root / official.ARCHIVE_NAME).is_file():
        batches = official.extract_archive(root / official.ARCHIVE_NAME, root)
    if batches is not None:
        groups = [(name, str(batches), [name]) for name in official.BATCH_FILES]
        return _Source("batches", batches, cache.content_key("batches", groups))
    if is_dir(root / "train") or is_dir(root / "test"):
        folders, groups = image_folders.scan(root)
        return _Source("images", root, cache.content_key("images", groups), folders)
    if not download:
        raise DatasetNotFoundError(_not_found_message(root, "download=False"))
    try:
        official.download_archive(root)
    except Exception as err:  # no network, refused, disk full, ...: all mean "no data"
        # The message holds the cause: its traceback (the network's, first) would only hide it.
        raise DatasetNotFoundError(
            _not_found_message(root, f"the download from {official.OFFICIAL_URL} failed: {err}")) from None
    return _find_source(root, download=False)


def _not_found_message(root: Path, why: str) -> str:
    state = "" if root.is_dir() else " (the folder does not exist)"
    return (
        f"No CIFAR-10 data in {root}{state}, and {why}.\n"
        f"Accepted layouts there, searched in this order:\n"
        f"  1. {official.BATCHES_DIR}/ with data_batch_1..5, test_batch, batches.meta (the official python batches)\n"
        f"  2. {official.ARCHIVE_NAME} (the official archive; extracted on first use)\n"
        f"  3. train/<class>/*.png|jpg|jpeg and test/<class>/* (an image-folder tree)\n"
        f"The official archive is {official.OFFICIAL_URL} (md5 {official.OFFICIAL_MD5}).\n"
        f"Offline: download it on another machine and put {official.ARCHIVE_NAME} in {root}, "
        f"or set CIFAR10_DIR (or pass data_dir) to a folder holding one of these layouts."
    )


# --------------------------------------------------------------------------- using the data


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and population std of uint8 N x 32 x 32 x 3 images, in [0, 1] units.

    Sums run in int64 over chunks of images, so they are exact and need no
    float copy of the whole set.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"channel_stats needs uint8 N x H x W x 3 images, got {images.dtype} {tuple(images.shape)}")
    if len(images) == 0:
        raise ValueError("channel_stats needs at least one image")
    total = torch.zeros(3, dtype=torch.int64)
    squares = torch.zeros(3, dtype=torch.int64)
    for chunk in images.split(1024):
        values = chunk.reshape(-1, 3).to(torch.int64)
        total += values.sum(0)
        squares += (values * values).sum(0)
    n = images.numel() // 3
    means, stds = [], []
    for s, ss in zip(total.tolist(), squares.tolist()):  # Python ints: exact until the division
        means.append(s / n / 255)
        stds.append(((ss * n - s * s) / (n * n)) ** 0.5 / 255)
    return tuple(means), tuple(stds)


def subset(data: CIFAR10, n_train: int, n_test: int, seed: int = 23) -> CIFAR10:
    """Keep `n_train` training and `n_test` test images, chosen at random with `seed`.

    The choice is class-balanced (classes take turns, in a seeded random
    order) and the kept images stay in their original order.
    """
    picks = []
    for name, n, labels in (("n_train", n_train, data.train_labels), ("n_test", n_test, data.test_labels)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"subset: {name} must be a positive int, got {n!r}")
        if n > len(labels):
            raise ValueError(f"subset: {name}={n} but the data have only {len(labels)} images")
        picks.append(_balanced_pick(labels, int(n), seed))
    train, test = picks
    return CIFAR10(data.train_images[train], data.train_labels[train],
                   data.test_images[test], data.test_labels[test], data.classes,
                   f"{len(train)} train / {len(test)} test subset (seed {seed}) of {data.source}")


def _balanced_pick(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    one_hot = torch.nn.functional.one_hot(labels[order], num_classes=10)
    rank = (one_hot.cumsum(0) * one_hot).sum(1) - 1  # position of each image within its class
    turn = rank * len(labels) + torch.arange(len(labels))  # round-robin over classes
    return order[turn.argsort()[:n]].sort().values


def counts(data: CIFAR10):
    """A pandas DataFrame of images per class: index the class names, columns train and test."""
    import pandas as pd

    return pd.DataFrame(
        {"train": torch.bincount(data.train_labels, minlength=len(data.classes)).tolist(),
         "test": torch.bincount(data.test_labels, minlength=len(data.classes)).tolist()},
        index=pd.Index(data.classes, name="class"))
