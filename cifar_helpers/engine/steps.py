"""The eager training step, the report's protocol: one optimisation step on a batch, metrics on the device.

A step is called as `step(inputs, labels, loss_sum, correct)`: it updates the
model and adds the batch's summed loss and correct count into the two device
tensors, so an epoch needs no host sync until its end. `EagerStep` is plain
PyTorch, op by op: every kernel is launched from Python. The optimizer uses
fused kernels where torch has them (`fused_optimizers_supported`): one
multi-tensor kernel updates every parameter, instead of ~10 ops per parameter.

The faster steps built on this one (torch.compile, CUDA graphs) and the
choice among them by STEP_MODE are the fast path's: `cifar_helpers.engine.fast`.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def fused_optimizers_supported(device: torch.device) -> bool:
    """True where torch has fused SGD/Adam kernels for `device` (CUDA; the CPU from torch 2.4)."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices
    except ImportError:
        return False
    return "cpu" in _get_fused_kernels_supported_devices()


class EagerStep:
    """Plain PyTorch: forward, backward and optimizer step, launched op by op."""

    def __init__(self, model, optimizer, amp: bool, device: torch.device):
        self.model, self.optimizer = model, optimizer
        # No weight-cast cache: no weight is used twice in a step, and CUDA graph capture forbids the cache.
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp, cache_enabled=False)
        self.forward_loss: Callable = self._forward_loss

    def _forward_loss(self, inputs, labels):
        logits = self.model(inputs)
        loss = F.cross_entropy(logits, labels)
        return loss, (logits.argmax(1) == labels).sum()

    def update(self, inputs, labels) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step; returns the batch's mean loss and correct count, on the device."""
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            loss, correct = self.forward_loss(inputs, labels)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), correct

    def __call__(self, inputs, labels, loss_sum, correct) -> None:
        batch_loss, batch_correct = self.update(inputs, labels)
        loss_sum.add_(batch_loss, alpha=labels.shape[0])
        correct.add_(batch_correct)
