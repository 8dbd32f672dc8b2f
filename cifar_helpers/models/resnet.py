"""ResNet: the lecture's residual network, three stages of basic blocks.

The report takes its ResNet from the course's lecture code: residual blocks in
three block layers (the Custom ResNet adds a fourth), and, since its conclusion
lists batch norm and dropout among the Custom ResNet's additions, neither of
those. This is that network: the classic CIFAR ResNet layout of He et al.
(2016, section 4.2), two basic blocks a stage, 32-64-128 channels, no batch
norm. A small study chose it against the report's own numbers
(docs/lecture-models.md): under the report's protocol it tests as well as the
16-32-64 network with batch norm the study tried first (R1), so here the
report's words cost nothing.

Layer by layer, for one 3×32×32 image (defaults `widths=(32, 64, 128)`,
`blocks=(2, 2, 2)`, `batch_norm=False`):

    stem     Conv3x3(3->32), ReLU                                 -> 32×32×32
    layer1   2 BasicBlocks, 32 channels                            -> 32×32×32
    layer2   2 BasicBlocks, 64 channels, the first with stride 2   -> 64×16×16
    layer3   2 BasicBlocks, 128 channels, the first with stride 2  -> 128×8×8
    pool     global average pool                                  -> 128×1×1
    fc       Linear(128, 10)                                      -> 10 logits

BasicBlock(in, out, stride):

    conv1 Conv3x3(in->out, stride), ReLU, conv2 Conv3x3(out->out)
    + shortcut: identity, or Conv1x1(in->out, stride) when the shape changes
    ReLU after the add

The convolutions have biases, and the last convolution of each residual
branch starts at zero, so that every block starts as the identity: without
batch norm that keeps SGD at lr 0.1 from blowing the stack up at the start.
`batch_norm=True` (the study's R1, with `widths=(16, 32, 64)`) puts a
BatchNorm2d after every convolution instead, biases off;
`summary.compare_blocks` uses that block to compare like with like against
the Custom ResNet's bottleneck block.

Parameters (defaults): 695,498.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cifar_helpers.models.layers import GlobalAvgPool


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a skip connection added before the last ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, batch_norm: bool = True):
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


# The stem: (kernel, stride). "3x3" keeps 32×32 (the CIFAR ResNet); "7x7" is the Custom ResNet's
# stem, 7×7 with stride 2 to 16×16 (no max-pool).
STEMS = {"3x3": (3, 1), "7x7": (7, 2)}


class ResNet(nn.Module):
    """The lecture ResNet: a 3×3 stem and three stages of two basic blocks (32, 64, 128 channels), no batch norm."""

    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128),
        blocks: tuple[int, ...] = (2, 2, 2),
        batch_norm: bool = False,
        stem: str = "3x3",
        num_classes: int = 10,
    ):
        super().__init__()
        widths, blocks = tuple(widths), tuple(blocks)  # JSON (a recorded architecture) gives lists
        if stem not in STEMS:
            raise ValueError(f"resnet: stem must be one of {', '.join(STEMS)}, got {stem!r}")
        if len(widths) != len(blocks) or not widths:
            raise ValueError(f"resnet: widths {widths} and blocks {blocks} need one entry per stage, and the same number")
        if any(n < 1 for n in blocks):
            raise ValueError(f"resnet: every stage needs at least one block, got blocks={blocks}")
        kernel, stride = STEMS[stem]
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], kernel, stride=stride, padding=kernel // 2, bias=not batch_norm),
                                  *([nn.BatchNorm2d(widths[0])] if batch_norm else []), nn.ReLU(inplace=True))
        in_channels = widths[0]
        self.stage_names = tuple(f"layer{index}" for index in range(1, len(widths) + 1))
        for index, (width, count) in enumerate(zip(widths, blocks), start=1):
            stride = 1 if index == 1 else 2
            stage = [BasicBlock(in_channels, width, stride, batch_norm)]
            stage += [BasicBlock(width, width, batch_norm=batch_norm) for _ in range(count - 1)]
            self.add_module(self.stage_names[index - 1], nn.Sequential(*stage))
            in_channels = width
        self.pool = GlobalAvgPool()
        self.fc = nn.Linear(in_channels, num_classes)
        self._init_weights(zero_init_residual=not batch_norm)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if not zero_init_residual:
            return
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

