"""Training steps: one optimisation step on a batch, with metrics kept on the device.

A step is called as `step(inputs, labels, loss_sum, correct)`: it updates the
model and adds the batch's summed loss and correct count into the two device
tensors, so an epoch needs no host sync until its end.

`make_step(mode, ...)` picks the implementation; `STEP_MODES` lists them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

STEP_MODES = ("eager",)


class EagerStep:
    """Plain PyTorch: forward, backward and optimizer step, launched op by op."""

    def __init__(self, model, optimizer, amp: bool, device: torch.device):
        self.model, self.optimizer = model, optimizer
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    def __call__(self, inputs, labels, loss_sum, correct) -> None:
        with self.autocast:
            logits = self.model(inputs)
            loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        loss_sum += loss.detach().float() * labels.shape[0]
        correct += (logits.argmax(1) == labels).sum()


def make_step(mode: str, model, optimizer, amp: bool, device: torch.device):
    if mode == "eager":
        return EagerStep(model, optimizer, amp, device)
    raise ValueError(f"STEP_MODE must be one of {STEP_MODES}, got {mode!r}")
