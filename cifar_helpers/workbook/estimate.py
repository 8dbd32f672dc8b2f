"""What a protocol costs on this machine, measured from a few real steps.

`make run` uses it to say, before it starts, how long the report's full
protocol would take without a GPU.
"""

from __future__ import annotations

import math
import statistics
import time

import torch

from cifar_helpers.engine.config import TrainConfig
from cifar_helpers.engine.device import prefers_channels_last
from cifar_helpers.models import build_model
from cifar_helpers.engine.steps import EagerStep
from cifar_helpers.engine.train import make_optimizer

FULL_TRAIN, FULL_TEST = 50_000, 10_000


def seconds_per_step(cfg: TrainConfig, device: torch.device, steps: int = 10, warmup: int = 2) -> float:
    """Median wall seconds of one eager engine step (the protocol's optimizer) at `cfg.batch_size`,
    after `warmup` untimed steps; the median of many steps keeps a busy machine's noise out."""
    torch.manual_seed(cfg.seed)
    memory_format = torch.channels_last if prefers_channels_last(device) else torch.contiguous_format
    model = build_model(cfg.model, **cfg.model_options).to(device, memory_format=memory_format).train()
    step = EagerStep(model, make_optimizer(cfg, model, device), cfg.amp, device)
    inputs = torch.randn(cfg.batch_size, 3, 32, 32, device=device).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 10, (cfg.batch_size,), device=device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    times = []
    for _ in range(warmup + steps):
        start = time.perf_counter()
        step(inputs, labels, loss_sum, correct)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[warmup:])


def epoch_seconds(cfg: TrainConfig, device: torch.device, n_train: int = FULL_TRAIN) -> float:
    """Training seconds for one epoch of `n_train` images (evaluation adds a little)."""
    return seconds_per_step(cfg, device) * math.ceil(n_train / cfg.batch_size)
