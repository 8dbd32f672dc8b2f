"""Image-folder trees (`train/<class>/`, `test/<class>/`, such as the JPEG copy): scanning them, which files
count as images, and decoding them in threads.

`scan(root)` lists the class folders and their image files (hidden files skipped; image types the loader does
not read stop it, rather than being left out unseen); `decode(root, folders)` gives the four arrays and a
description, every image checked to be 32x32 and converted to RGB.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from pathlib import Path

import numpy as np

from cifar_helpers.core import paths
from cifar_helpers.core.progress import counted
from cifar_helpers.data.errors import CorruptDatasetError, is_dir, unreadable
from cifar_helpers.data.official import CIFAR10_CLASSES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Image files the loader does not read: a class folder holding any stops the load instead of losing them.
OTHER_IMAGE_SUFFIXES = (".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pnm", ".pbm", ".tga",
                        ".ico", ".heic", ".heif", ".avif", ".jp2", ".jxl")
ClassFolder = tuple[int, int, str, list[str]]  # split index (0 train, 1 test), label, folder, sorted file names


def scan(root: Path) -> tuple[list[ClassFolder], list[tuple[str, str, list[str]]]]:
    """The class folders under `root`, train first, and what the cache key reads: (split/class, folder, files)."""
    folders: list[ClassFolder] = []
    groups: list[tuple[str, str, list[str]]] = []
    unread: list[str] = []
    for split_index, split in enumerate(("train", "test")):
        split_dir = root / split
        if not is_dir(split_dir):
            raise CorruptDatasetError(
                f"{root} looks like an image-folder tree but has no {split}/ folder. "
                f"Add {split}/<class>/ images, or remove the incomplete tree.")
        for name in _subfolder_names(split_dir):
            if name not in CIFAR10_CLASSES:
                raise CorruptDatasetError(
                    f"{split_dir / name}: '{name}' is not a CIFAR-10 class; class folders must be "
                    f"named {', '.join(CIFAR10_CLASSES)}. Rename or remove it.")
            class_dir = str(split_dir / name)
            try:
                listed = os.listdir(class_dir)
            except OSError as err:
                raise unreadable(err) from None
            # Hidden files are never images: .DS_Store, and macOS's "._name.jpg" resource forks.
            listed = [f for f in listed if not f.startswith(".")]
            files = sorted(f for f in listed if f.lower().endswith(IMAGE_SUFFIXES))
            unread += sorted(os.path.join(class_dir, f) for f in listed if f.lower().endswith(OTHER_IMAGE_SUFFIXES))
            folders.append((split_index, CIFAR10_CLASSES.index(name), class_dir, files))
            groups.append((f"{split}/{name}", class_dir, files))
    if unread:
        more = len(unread) - 1
        more = f", and {more:,} more such file{'s' if more > 1 else ''} in {root}" if more else ""
        raise CorruptDatasetError(
            f"{unread[0]} is a {os.path.splitext(unread[0])[1].lower()} image{more}: the loader reads "
            f"{', '.join(IMAGE_SUFFIXES)} only, and leaving them out would change the data set unseen. "
            "Convert them to PNG (lossless), or move them out of the class folders.")
    return folders, groups


def _subfolder_names(folder: Path) -> list[str]:
    try:
        entries = [Path(entry.path) for entry in os.scandir(folder)]
    except OSError as err:
        raise unreadable(err) from None
    return sorted(path.name for path in entries if is_dir(path))


def _decode_image(file: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(file) as img:
            size = img.size
            pixels = np.asarray(img.convert("RGB")) if size == (32, 32) else None
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ... on damaged files
        raise CorruptDatasetError(
            f"Cannot decode {file}: {type(err).__name__}: {err}. Replace it with a good copy, "
            f"or delete it.") from None
    if pixels is None:
        raise CorruptDatasetError(
            f"{file} is {size[0]}x{size[1]} pixels; CIFAR-10 images are 32x32. "
            f"Replace it with a 32x32 copy, or delete it.")
    return pixels


def decode(root: Path, folders: list[ClassFolder]):
    """The four arrays of the images in `folders` (as `scan` lists them), a description, and no caveats."""
    files = [os.path.join(folder, name) for _, _, folder, names in folders for name in names]
    images = np.empty((len(files), 32, 32, 3), dtype=np.uint8)

    def decode_range(start: int, stop: int) -> None:
        for i in range(start, stop):
            images[i] = _decode_image(files[i])

    # The JPEG copy's first load takes most of a minute: say what happens, and how far it got.
    print(f"Decoding the {len(files):,} images in {root} (once: the arrays are cached for later loads)",
          flush=True)
    started = time.perf_counter()
    # PIL releases the GIL while decoding, so threads help; chunks keep the overhead low.
    step = 2000
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool, \
            counted(len(files), "image") as advance:
        jobs = [pool.submit(decode_range, s, min(s + step, len(files))) for s in range(0, len(files), step)]
        try:
            for start, job in zip(range(0, len(files), step), jobs):
                job.result()
                advance(min(step, len(files) - start))
        except BaseException:
            for job in jobs:
                job.cancel()
            raise
    print(f"Decoded {len(files):,} images in {time.perf_counter() - started:.0f} s.", flush=True)

    # The scan lists train folders first, then test ones.
    labels = np.concatenate([np.full(len(names), label, dtype=np.int64)
                             for _, label, _, names in folders] or [np.empty(0, np.int64)])
    n_train = sum(len(names) for split, _, _, names in folders if split == 0)
    arrays = (images[:n_train], labels[:n_train], images[n_train:], labels[n_train:])
    suffixes = {os.path.splitext(f)[1].lower() for f in files}
    kinds = "/".join(k for k, s in (("PNG", {".png"}), ("JPEG", {".jpg", ".jpeg"})) if suffixes & s) or "empty"
    lossy = " (lossy copy)" if suffixes & {".jpg", ".jpeg"} else ""
    description = f"{kinds} image folder{lossy} at {paths.shown_path(root)} (train/<class>/, test/<class>/)"
    return arrays, description, []
