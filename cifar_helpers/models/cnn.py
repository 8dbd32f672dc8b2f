"""CNN: the lecture's plain convolutional network, without skip connections.

The report only says the CNN comes from the lecture code and has no skip
connections; this is the classic VGG-style network we chose for it (see
shared/PROTOCOL.md). No batch norm, no dropout. Every 3×3 convolution has
padding 1, so only the max-pools shrink the image.

Layer by layer, for one 3×32×32 image:

    block1   Conv3x3(3->32), ReLU, Conv3x3(32->32), ReLU, MaxPool2   -> 32×16×16
    block2   Conv3x3(32->64), ReLU, Conv3x3(64->64), ReLU, MaxPool2  -> 64×8×8
    block3   Conv3x3(64->128), ReLU, MaxPool2                        -> 128×4×4
    flatten                                                          -> 2048
    fc1      Linear(2048, 256), ReLU                                 -> 256
    fc       Linear(256, 10)                                         -> 10 logits

Parameters: 666,538.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU(inplace=True)]


class CNN(nn.Module):
    def __init__(self, widths: tuple[int, int, int] = (32, 64, 128), hidden: int = 256, num_classes: int = 10):
        super().__init__()
        w1, w2, w3 = widths
        self.block1 = nn.Sequential(*_conv_relu(3, w1), *_conv_relu(w1, w1), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(*_conv_relu(w1, w2), *_conv_relu(w2, w2), nn.MaxPool2d(2))
        self.block3 = nn.Sequential(*_conv_relu(w2, w3), nn.MaxPool2d(2))
        # flatten, not .view: the trainer may hand over channels_last tensors.
        self.flatten = nn.Flatten()
        self.fc1 = nn.Sequential(nn.Linear(w3 * 4 * 4, hidden), nn.ReLU(inplace=True))
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(x)))
        return self.fc(self.fc1(self.flatten(x)))


def cnn(widths: tuple[int, int, int] = (32, 64, 128), hidden: int = 256, num_classes: int = 10) -> CNN:
    """The lecture CNN: five 3×3 convolutions in three pooled blocks, then two linear layers."""
    return CNN(widths=tuple(widths), hidden=hidden, num_classes=num_classes)
