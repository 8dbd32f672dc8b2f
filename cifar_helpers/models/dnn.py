"""DNN: the lecture's fully connected network on the flattened image.

The report takes its DNN from the course's lecture code and gives no
architecture. This one was chosen in a small study against the report's own
numbers (docs/lecture-models.md): a plain multilayer perceptron with batch
norm, the usual lecture shape that trains at all under the report's SGD at
lr 0.1 with momentum 0.9 (without batch norm, ReLU networks stay near 20%).

Layer by layer, for one 3×32×32 image (defaults):

    flatten   3×32×32 -> 3072
    fc1       Linear(3072, 512), BatchNorm1d(512), ReLU  -> 512
    fc2       Linear(512, 256),  BatchNorm1d(256), ReLU  -> 256
    fc        Linear(256, 10)                            -> 10 class scores (logits)

`hidden`, `batch_norm` and `activation` ("relu" or "sigmoid") build the
other candidates of the study.

Parameters (defaults): 1,708,810.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGE_FEATURES = 3 * 32 * 32


ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class DNN(nn.Module):
    """The lecture DNN: 3072 -> 512 -> 256 -> 10, batch norm and ReLU after each hidden layer."""

    def __init__(self, hidden: tuple[int, ...] = (512, 256), batch_norm: bool = True,
                 activation: str = "relu", num_classes: int = 10):
        super().__init__()
        if not hidden:
            raise ValueError("dnn: give at least one hidden layer width")
        if activation not in ACTIVATIONS:
            raise ValueError(f"dnn: activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        self.flatten = nn.Flatten()
        widths = (IMAGE_FEATURES, *hidden)
        for index, (n_in, n_out) in enumerate(zip(widths, widths[1:]), start=1):
            layers = [nn.Linear(n_in, n_out)]
            if batch_norm:
                layers.append(nn.BatchNorm1d(n_out))
            layers.append(ACTIVATIONS[activation]())
            self.add_module(f"fc{index}", nn.Sequential(*layers))
        self.hidden_names = tuple(f"fc{index}" for index in range(1, len(hidden) + 1))
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)
        for name in self.hidden_names:
            x = getattr(self, name)(x)
        return self.fc(x)

