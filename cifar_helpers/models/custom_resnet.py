"""Custom ResNet: the report's own network (section 3.1, Fig 2 and Fig 3).

Four stages of bottleneck blocks behind a 7×7 stem, with batch norm after
every convolution and dropout at the end of every block.

Layer by layer, for one 3×32×32 image (defaults):

    stem     Conv7x7(3->64, stride 2, padding 3), BN, ReLU   -> 64×16×16 (no max-pool)
    layer1   3 Bottlenecks, 64 channels, stride 1             -> 64×16×16
    layer2   4 Bottlenecks, 128 channels, the first stride 2  -> 128×8×8
    layer3   6 Bottlenecks, 256 channels, the first stride 2  -> 256×4×4
    layer4   3 Bottlenecks, 512 channels, the first stride 2  -> 512×2×2
    pool     GlobalAvgPool (mean over H, W)                   -> 512×1×1
    fc       Linear(512, 10)                                  -> 10 logits

Bottleneck(in, out, stride), inner width = out // bottleneck_factor:

    conv1 Conv1x1(in->inner),             bn1, ReLU
    conv2 Conv3x3(inner->inner, stride),  bn2, ReLU
    conv3 Conv1x1(inner->out),            bn3
    + shortcut: identity, or Conv1x1(in->out, stride) + BN when the shape changes
    ReLU after the add, then dropout

Choices where the report is silent (recorded in docs/protocol.md):
- The inner width: out // 4 (`bottleneck_factor=4`). The block keeps its
  input and output channels, as the report says ("without changing the size
  of input and output"), so a stage of width C runs its 3×3 convolution on
  C/4 channels.
- The dropout rate: the report gives none. `dropout=0.1` is our default;
  it is a parameter.
Convolutions followed by batch norm have no bias (the norm's shift replaces it).

Parameters (defaults): 1,492,874.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cifar_helpers.models.layers import GlobalAvgPool

# The report gives no dropout rate (docs/protocol.md); notebook 05's DROPOUT default must equal it.
DEFAULT_DROPOUT = 0.1


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (carries the stride), 1×1 expand; skip added before the last ReLU; dropout last."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        bottleneck_factor: int = 4,
        dropout: float = DEFAULT_DROPOUT,
    ):
        super().__init__()
        inner = out_channels // bottleneck_factor
        if inner < 1:
            raise ValueError(
                f"Bottleneck: out_channels={out_channels} // bottleneck_factor={bottleneck_factor} leaves no inner channel"
            )
        self.conv1 = nn.Conv2d(in_channels, inner, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, inner, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv3 = nn.Conv2d(inner, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = out + self.shortcut(x)
        return self.dropout(F.relu(out))


class CustomResNet(nn.Module):
    """The report's Custom ResNet: 7×7 stride-2 stem, bottleneck stages (3, 4, 6, 3), BN and dropout."""

    # In the order results files record a run's architecture (models.architecture).
    def __init__(
        self,
        dropout: float = DEFAULT_DROPOUT,
        blocks: tuple[int, ...] = (3, 4, 6, 3),
        widths: tuple[int, ...] = (64, 128, 256, 512),
        bottleneck_factor: int = 4,
        num_classes: int = 10,
    ):
        super().__init__()
        widths, blocks = tuple(widths), tuple(blocks)  # JSON (a recorded architecture) gives lists
        if len(widths) != len(blocks) or not widths:
            raise ValueError(
                f"custom_resnet: widths {widths} and blocks {blocks} need one entry per stage, and the same number"
            )
        if any(n < 1 for n in blocks):
            raise ValueError(f"custom_resnet: every stage needs at least one block, got blocks={blocks}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"custom_resnet: dropout is a probability in [0, 1), got {dropout}")
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        self.stage_names = tuple(f"layer{index}" for index in range(1, len(widths) + 1))
        in_channels = widths[0]
        for name, width, count, first_stride in zip(self.stage_names, widths, blocks, [1] + [2] * (len(widths) - 1)):
            stage = []
            for index in range(count):
                stride = first_stride if index == 0 else 1
                stage.append(Bottleneck(in_channels, width, stride, bottleneck_factor, dropout))
                in_channels = width
            self.add_module(name, nn.Sequential(*stage))
        self.pool = GlobalAvgPool()
        self.fc = nn.Linear(in_channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.pool(x), 1))

