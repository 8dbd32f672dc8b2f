"""DNN: the lecture's fully connected network on the flattened image.

The report only says the DNN comes from the lecture code; this is the plain
multilayer perceptron we chose for it (see shared/PROTOCOL.md). No batch
norm, no dropout.

Layer by layer, for one 3×32×32 image:

    flatten   3×32×32 -> 3072
    fc1       Linear(3072, 1024), ReLU  -> 1024
    fc2       Linear(1024, 512),  ReLU  -> 512
    fc        Linear(512, 10)           -> 10 class scores (logits)

Parameters: 3,676,682.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGE_FEATURES = 3 * 32 * 32


class DNN(nn.Module):
    def __init__(self, hidden: tuple[int, int] = (1024, 512), num_classes: int = 10):
        super().__init__()
        hidden1, hidden2 = hidden
        self.flatten = nn.Flatten()
        self.fc1 = nn.Sequential(nn.Linear(IMAGE_FEATURES, hidden1), nn.ReLU(inplace=True))
        self.fc2 = nn.Sequential(nn.Linear(hidden1, hidden2), nn.ReLU(inplace=True))
        self.fc = nn.Linear(hidden2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.fc2(self.fc1(self.flatten(x))))


def dnn(hidden: tuple[int, int] = (1024, 512), num_classes: int = 10) -> DNN:
    """The lecture DNN: 3072 -> 1024 -> 512 -> 10 with ReLU between."""
    return DNN(hidden=tuple(hidden), num_classes=num_classes)
