"""Small layers the model families share."""

from __future__ import annotations

import torch
from torch import nn


class GlobalAvgPool(nn.Module):
    """Average over height and width: N×C×H×W -> N×C×1×1.

    Same numbers as nn.AdaptiveAvgPool2d(1), but its backward is a plain
    broadcast, so it also runs under torch.use_deterministic_algorithms(True)
    on CUDA, where adaptive_avg_pool2d's backward has no deterministic kernel.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)
