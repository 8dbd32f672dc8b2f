"""ResNet: the lecture's residual network, three stages of basic blocks.

The report says the lecture ResNet has residual blocks in three block layers
(the Custom ResNet adds a fourth) and no batch norm and no dropout (both are
listed as additions of the Custom ResNet). This is the classic CIFAR ResNet
we chose to fit those facts (see shared/PROTOCOL.md). Every convolution has a
bias, since there is no batch norm to absorb one.

Layer by layer, for one 3×32×32 image (defaults `widths=(32, 64, 128)`,
`blocks=(2, 2, 2)`):

    stem     Conv3x3(3->32, stride 1), ReLU                       -> 32×32×32
    layer1   2 BasicBlocks, 32 channels                            -> 32×32×32
    layer2   2 BasicBlocks, 64 channels, the first with stride 2   -> 64×16×16
    layer3   2 BasicBlocks, 128 channels, the first with stride 2  -> 128×8×8
    pool     global average pool                                  -> 128×1×1
    fc       Linear(128, 10)                                      -> 10 logits

BasicBlock(in, out, stride):

    conv1 Conv3x3(in->out, stride), ReLU, conv2 Conv3x3(out->out)
    + shortcut: identity, or Conv1x1(in->out, stride) when the shape changes
    ReLU after the add

`BasicBlock(..., batch_norm=True)` puts a BatchNorm after each convolution
(and in the projection); the lecture ResNet does not use it, but
`summary.compare_blocks` does, to compare like with like against the
Custom ResNet's bottleneck block.

Parameters: 695,498.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import GlobalAvgPool


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a skip connection added before the last ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, batch_norm: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=not batch_norm)
        self.bn1 = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=not batch_norm)
        self.bn2 = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        if stride != 1 or in_channels != out_channels:
            projection = [nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=not batch_norm)]
            if batch_norm:
                projection.append(nn.BatchNorm2d(out_channels))
            self.shortcut = nn.Sequential(*projection)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return F.relu(out)


class ResNet(nn.Module):
    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128),
        blocks: tuple[int, ...] = (2, 2, 2),
        num_classes: int = 10,
    ):
        super().__init__()
        if len(widths) != len(blocks) or not widths:
            raise ValueError(f"resnet: widths {widths} and blocks {blocks} need one entry per stage, and the same number")
        if any(n < 1 for n in blocks):
            raise ValueError(f"resnet: every stage needs at least one block, got blocks={blocks}")
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1), nn.ReLU(inplace=True))
        in_channels = widths[0]
        self.stage_names = tuple(f"layer{index}" for index in range(1, len(widths) + 1))
        for index, (width, count) in enumerate(zip(widths, blocks), start=1):
            stride = 1 if index == 1 else 2
            stage = [BasicBlock(in_channels, width, stride)]
            stage += [BasicBlock(width, width) for _ in range(count - 1)]
            self.add_module(self.stage_names[index - 1], nn.Sequential(*stage))
            in_channels = width
        self.pool = GlobalAvgPool()
        self.fc = nn.Linear(in_channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        # Without batch norm, SGD at lr 0.1 with momentum 0.9 can blow up a
        # deep residual stack at the start; a zero last conv makes every block
        # start as the identity (the Fixup / "zero-init residual" idea), so
        # the signal keeps its scale and the branches grow as they learn.
        for module in self.modules():
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.conv2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def resnet(
    widths: tuple[int, ...] = (32, 64, 128),
    blocks: tuple[int, ...] = (2, 2, 2),
    num_classes: int = 10,
) -> ResNet:
    """The lecture ResNet: a 3×3 stem and three stages of basic blocks, no batch norm."""
    return ResNet(widths=tuple(widths), blocks=tuple(blocks), num_classes=num_classes)
