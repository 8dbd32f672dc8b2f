"""CIFAR-10's structure, checked on every load whatever the source (and on every cache read): 32x32 RGB uint8
images, one label 0..9 per image, all ten classes in both splits; and the counts, compared with the official
release's, as the load's warning says them.
"""

from __future__ import annotations

import numpy as np

from cifar_helpers.data.errors import CorruptDatasetError
from cifar_helpers.data.official import CIFAR10_CLASSES, OFFICIAL_TEST_PER_CLASS, OFFICIAL_TRAIN_PER_CLASS


def validate(arrays, where: str) -> None:
    """Raise CorruptDatasetError unless the arrays have CIFAR-10's structure (counts aside)."""
    for split, images, labels in (("train", arrays[0], arrays[1]), ("test", arrays[2], arrays[3])):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
            raise CorruptDatasetError(
                f"{where}: {split} images are {images.dtype} {tuple(images.shape)}, not uint8 N x 32 x 32 x 3.")
        if labels.ndim != 1 or len(labels) != len(images):
            raise CorruptDatasetError(
                f"{where}: {len(images)} {split} images but {len(labels)} labels.")
        bad = labels[(labels < 0) | (labels > 9)]
        if len(bad):
            raise CorruptDatasetError(
                f"{where}: {len(bad)} {split} labels are outside 0..9 (e.g. {int(bad[0])}). "
                f"Replace the data with a good copy.")
        counts = np.bincount(labels, minlength=10)
        missing = [CIFAR10_CLASSES[k] for k in range(10) if counts[k] == 0]
        if missing:
            raise CorruptDatasetError(
                f"{where}: the {split} set has no images of class {', '.join(missing)}; "
                f"every CIFAR-10 class must appear in train and in test.")


def count_caveats(arrays) -> list[str]:
    """The warning's words when the per-class counts are not the official ones, else none."""
    train = np.bincount(arrays[1], minlength=10)
    test = np.bincount(arrays[3], minlength=10)
    if (train == OFFICIAL_TRAIN_PER_CLASS).all() and (test == OFFICIAL_TEST_PER_CLASS).all():
        return []

    def per_class(c: np.ndarray) -> str:
        return f"{c.min():,}" if c.min() == c.max() else f"{c.min():,}-{c.max():,}"

    return [f"{train.sum():,} training and {test.sum():,} test images ({per_class(train)} and "
            f"{per_class(test)} per class), not the official 50,000 and 10,000 (5,000 and 1,000 per class)"]
