"""CNN: the lecture's plain convolutional network, without skip connections.

The report takes its CNN from the course's lecture code and says only that it
has no skip connections. This VGG-style network was chosen in a small study
against the report's own numbers (docs/lecture-models.md). Every 3×3
convolution has padding 1 and is followed by batch norm and ReLU, so only the
max-pools shrink the image; without batch norm it barely fits the training
set under the report's SGD at lr 0.1 with momentum 0.9.

Layer by layer, for one 3×32×32 image (defaults):

    block1   Conv3x3(3->32), BN, ReLU, Conv3x3(32->32), BN, ReLU, MaxPool2   -> 32×16×16
    block2   Conv3x3(32->64), BN, ReLU, Conv3x3(64->64), BN, ReLU, MaxPool2  -> 64×8×8
    block3   Conv3x3(64->128), BN, ReLU, MaxPool2                            -> 128×4×4
    flatten                                                                  -> 2048
    fc1      Linear(2048, 256), ReLU                                         -> 256
    fc       Linear(256, 10)                                                 -> 10 logits

Convolutions followed by batch norm have no bias (the norm's shift replaces
it). `batch_norm=False` and `dropout` (before the last linear layer) build
the other candidates of the study.

Parameters (defaults): 666,858.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_relu(in_channels: int, out_channels: int, batch_norm: bool) -> list[nn.Module]:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=not batch_norm)
    return [conv, *([nn.BatchNorm2d(out_channels)] if batch_norm else []), nn.ReLU(inplace=True)]


class CNN(nn.Module):
    """The lecture CNN: five 3×3 convolutions with batch norm in three pooled blocks, then two linear layers."""

    def __init__(self, widths: tuple[int, int, int] = (32, 64, 128), hidden: int = 256, batch_norm: bool = True,
                 dropout: float = 0.0, num_classes: int = 10):
        super().__init__()
        w1, w2, w3 = widths
        bn = batch_norm
        self.block1 = nn.Sequential(*_conv_relu(3, w1, bn), *_conv_relu(w1, w1, bn), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(*_conv_relu(w1, w2, bn), *_conv_relu(w2, w2, bn), nn.MaxPool2d(2))
        self.block3 = nn.Sequential(*_conv_relu(w2, w3, bn), nn.MaxPool2d(2))
        # flatten, not .view: the trainer may hand over channels_last tensors.
        self.flatten = nn.Flatten()
        self.fc1 = nn.Sequential(nn.Linear(w3 * 4 * 4, hidden), nn.ReLU(inplace=True),
                                 *([nn.Dropout(dropout)] if dropout else []))
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(x)))
        return self.fc(self.fc1(self.flatten(x)))

