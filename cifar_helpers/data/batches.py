"""The data set resident on the training device, and batches made from it.

The images stay on the device as uint8 for the whole run (airbench-style).
Each epoch is prepared with a handful of whole-data tensor ops (one shuffle
gather, one crop-and-flip gather, one normalisation), so a training step only
slices a ready tensor: no DataLoader, no worker processes, no per-sample
Python, and no extra kernels per step for the data.

The shuffle and the augmentation of epoch `e` depend only on (seed, e), so a
resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

PAD = 4  # RandomCrop(32, padding=4), zero padding as in torchvision
CHUNK = 8192  # images per gather, to bound temporary index memory


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator for one epoch's shuffle and augmentation."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def crop_flip_indices(n: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices into padded images for a random crop + flip.

    Returns rows (n, size) and cols (n, size); a flipped image reads its
    columns right to left.
    """
    offsets = torch.randint(0, 2 * PAD + 1, (2, n), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    ramp = torch.arange(size)
    rows = offsets[0, :, None] + ramp
    cols = offsets[1, :, None] + torch.where(flip[:, None], ramp.flip(0), ramp)
    return rows, cols


def crop_flip(padded: torch.Tensor, index: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Gather crops of the images `padded[index]` as one (n, C, size, size) tensor.

    `padded` is (N, C, H+2p, W+2p); shuffle, crop and flip happen in one gather.
    """
    n, channels = index.shape[0], padded.shape[1]
    out = torch.empty((n, channels, rows.shape[1], cols.shape[1]), dtype=padded.dtype, device=padded.device)
    for start in range(0, n, CHUNK):
        sl = slice(start, start + CHUNK)
        idx, r, c = (t[sl].to(padded.device) for t in (index, rows, cols))
        # Advanced indexing puts the broadcast (n, size, size) dims first, channels last.
        out[sl] = padded[idx[:, None, None], :, r[:, :, None], c[:, None, :]].permute(0, 3, 1, 2)
    return out


@dataclass
class Normalizer:
    """x_float = (x_uint8 / 255 - mean) / std, as one multiply-add."""

    scale: torch.Tensor
    shift: torch.Tensor

    @classmethod
    def from_stats(cls, mean, std, device) -> "Normalizer":
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        return cls(scale=1.0 / (255.0 * std_t), shift=-mean_t / std_t)

    def __call__(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, images_uint8.float(), self.scale)


class DeviceData:
    """Train and test sets on `device`, NCHW uint8, with per-epoch batches."""

    def __init__(self, train_images, train_labels, test_images, test_labels, mean, std,
                 device: torch.device, channels_last: bool = False):
        self.device = device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        to_nchw = lambda x: x.permute(0, 3, 1, 2).contiguous().to(device)  # noqa: E731
        self.train_images = to_nchw(train_images)
        self.train_labels = train_labels.to(device)
        self.test_labels = test_labels.to(device)
        self.normalize = Normalizer.from_stats(mean, std, device)
        self.test_inputs = self._prepare(to_nchw(test_images))
        self._padded: torch.Tensor | None = None

    @property
    def n_train(self) -> int:
        return self.train_images.shape[0]

    @property
    def n_test(self) -> int:
        return self.test_labels.shape[0]

    def _prepare(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.normalize(images_uint8).contiguous(memory_format=self.memory_format)

    def _padded_train(self) -> torch.Tensor:
        if self._padded is None:
            self._padded = torch.nn.functional.pad(self.train_images, (PAD, PAD, PAD, PAD))
        return self._padded

    def epoch_inputs(self, seed: int, epoch: int, augment: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """All training inputs of one epoch, shuffled (and augmented), normalised."""
        generator = epoch_generator(seed, epoch)
        order = torch.randperm(self.n_train, generator=generator).to(self.device)
        if augment:
            rows, cols = crop_flip_indices(self.n_train, self.train_images.shape[-1], generator)
            images = crop_flip(self._padded_train(), order, rows, cols)
        else:
            images = self.train_images[order]
        return self._prepare(images), self.train_labels[order]

    def train_batches(self, seed: int, epoch: int, batch_size: int, augment: bool
                      ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every training image once, in a fresh shuffle, last partial batch included."""
        inputs, labels = self.epoch_inputs(seed, epoch, augment)
        for start in range(0, self.n_train, batch_size):
            yield inputs[start:start + batch_size], labels[start:start + batch_size]

    def test_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, self.n_test, batch_size):
            yield self.test_inputs[start:start + batch_size], self.test_labels[start:start + batch_size]
