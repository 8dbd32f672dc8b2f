"""The fast path: compiled and CUDA-graph steps, and the one-cycle recipe of `params/fast.yaml`.

The report's protocols train with the eager step (`cifar_helpers.engine.steps`);
nothing here changes a number they produce. This module holds what the fast
profile adds on a GPU:

- the step modes (`STEP_MODES`, picked by `make_step`):
  ``eager``: the report's step, op by op;
  ``compile``: `torch.compile` of forward + loss (AOTAutograd compiles the
  backward too); on CUDA with ``mode="reduce-overhead"`` (CUDA graphs of the
  compiled forward and backward). The optimizer step stays eager, fused;
  ``cuda_graph``: the whole step (forward, backward, fused optimizer) captured
  in one CUDA graph per batch size and replayed: one launch per step;
  ``compile_cuda_graph``: the same capture around a `torch.compile`d forward
  (fewer, fused kernels in the graph; costs a compile at the start);
  ``auto``: ``cuda_graph`` on a CUDA device, else ``eager``.
  All modes compute the same function; `optimizer_options` gives the optimizer
  settings a mode needs (fused kernels; for graphs, a learning rate that lives
  in device memory, so that schedulers still act on replayed steps);
- the one-cycle schedule (`onecycle_factor`, `onecycle_scheduler`): linear
  warm-up over WARMUP_FRACTION of all steps, then linear decay to zero,
  stepped per batch;
- the recipe's notebook parameters (`RECIPE_PARAMETERS`), which a training
  notebook takes from a profile without declaring them.
"""

from __future__ import annotations

import collections
import contextlib
import functools
from typing import Callable

import torch

from cifar_helpers.engine.steps import EagerStep, fused_optimizers_supported

STEP_MODES = ("eager", "compile", "cuda_graph", "compile_cuda_graph", "auto")
GRAPH_MODES = ("cuda_graph", "compile_cuda_graph")
GRAPH_WARMUP_STEPS = 2  # eager runs of a batch size before it is captured (lazy init: cudnn, optimizer state)

# The recipe's settings beyond the report's protocols, as notebook parameters: name -> TrainConfig field. A
# training notebook takes them from a profile (params/fast.yaml) or papermill without declaring them; the
# lecture notebooks declare MOMENTUM as their own protocol's, while for 05's Adam it is the recipe's alone.
RECIPE_PARAMETERS = {"MOMENTUM": "momentum", "NESTEROV": "nesterov", "WARMUP_FRACTION": "warmup_fraction"}


def resolve_mode(mode: str, device: torch.device) -> str:
    """The concrete mode `mode` means on `device` (``auto`` picks one)."""
    if mode not in STEP_MODES:
        raise ValueError(f"STEP_MODE must be one of {STEP_MODES}, got {mode!r}")
    if mode == "auto":
        return "cuda_graph" if device.type == "cuda" else "eager"
    return mode


def optimizer_options(mode: str, optimizer: str, device: torch.device, lr: float) -> dict:
    """Keyword arguments for `torch.optim.SGD`/`Adam`/`AdamW` (`optimizer` 'sgd', 'adam' or 'adamw') under `mode`.

    Fused where torch has the kernels (`steps.fused_optimizers_supported`). Graph
    modes also get `lr` as a device tensor (a replayed graph reads it from memory,
    so a scheduler's in-place update takes effect) and, for Adam,
    `capturable=True` (its step count lives on the device).
    """
    mode = resolve_mode(mode, device)
    options: dict = {"lr": lr}
    if fused_optimizers_supported(device):
        options["fused"] = True
    if mode in GRAPH_MODES:
        options["lr"] = torch.tensor(float(lr), dtype=torch.float32, device=device)
        if optimizer in ("adam", "adamw") and device.type == "cuda":
            options["capturable"] = True
    return options


def compile_options(mode: str, device: torch.device) -> dict:
    """`torch.compile` keyword arguments for the forward of step `mode` on `device`.

    Static shapes: the last partial batch compiles once more, and never makes
    every other step pay for dynamic-shape code.
    """
    options: dict = {"dynamic": False}
    if mode == "compile" and device.type == "cuda":
        options["mode"] = "reduce-overhead"
    return options


class CompiledStep(EagerStep):
    """`torch.compile` of forward + loss + accuracy; eager (fused) optimizer step."""

    def __init__(self, model, optimizer, amp: bool, device: torch.device, options: dict | None = None):
        super().__init__(model, optimizer, amp, device)
        options = compile_options("compile", device) if options is None else options
        self.forward_loss = torch.compile(self._forward_loss, **options)
        # CUDA-graph trees reuse their output memory; each step starts a new generation.
        self._mark_step = (torch.compiler.cudagraph_mark_step_begin
                           if options.get("mode") == "reduce-overhead" else None)

    def update(self, inputs, labels):
        if self._mark_step is not None:
            self._mark_step()
        return super().update(inputs, labels)


def capture_cuda_graph(body: Callable[[], None]) -> Callable[[], None]:
    """Record `body`'s kernels into a CUDA graph (without running them); return its replay."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        body()
    return graph.replay


class _Captured:
    """One captured step: static input buffers, the graph's outputs and its replay."""

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor):
        self.inputs, self.labels = inputs, labels
        self.outputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self.replay: Callable[[], None] = lambda: None


class GraphedStep:
    """The whole training step replayed from a CUDA graph, one graph per batch size.

    A batch size runs eagerly `warmup_steps` times (on a side stream: cudnn
    autotuning, the optimizer's lazily made state), then its step is captured
    once, reading from static input buffers; every later batch of that size
    is copied into the buffers and replayed. So the last partial batch of an
    epoch gets a graph of its own from the epoch after its warm-up on, at the
    cost of a second graph's memory (small beside the activations).

    The graph bakes in every tensor address it touches, so:
    - the optimizer must be capturable (`optimizer_options(mode, ...)`): its
      learning rate is a device tensor that schedulers update in place. A
      float or foreign tensor put into a param group later (`load_state_dict`)
      is copied into that tensor before the next step;
    - load optimizer and model state before the first step, with in-place
      copies (`load_state_dict` does) afterwards;
    - gradients belong to the graph: `p.grad` after a replay is the graph's.

    `capture(body) -> replay` is injectable so that this bookkeeping runs
    without a GPU: a fake that returns `body` itself replays the step eagerly.
    """

    def __init__(self, model, optimizer, amp: bool, device: torch.device, *,
                 compile_model: bool = False, warmup_steps: int = GRAPH_WARMUP_STEPS,
                 capture: Callable[[Callable[[], None]], Callable[[], None]] | None = None):
        if capture is None and device.type != "cuda":
            raise ValueError(f"GraphedStep captures CUDA graphs; it needs a CUDA device, got {device}")
        if device.type == "cuda" and any(g.get("capturable") is False for g in optimizer.param_groups):
            raise ValueError("GraphedStep needs a capturable optimizer: make it with "
                             "torch.optim.Adam(params, **optimizer_options('cuda_graph', 'adam', device, lr))")
        self.device = device
        self.eager = (CompiledStep(model, optimizer, amp, device, compile_options("compile_cuda_graph", device))
                      if compile_model else EagerStep(model, optimizer, amp, device))
        self.optimizer = optimizer
        self.warmup_steps = warmup_steps
        self.capture = capture or capture_cuda_graph
        self.graphs: dict[int, _Captured] = {}
        self.eager_runs: collections.Counter[int] = collections.Counter()
        self.lrs = [self._device_lr(group["lr"]) for group in optimizer.param_groups]
        self._keep_lr_tensors()
        self._side_stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    @property
    def model(self):
        return self.eager.model

    @property
    def captured_sizes(self) -> list[int]:
        return sorted(self.graphs)

    def _device_lr(self, lr) -> torch.Tensor:
        if isinstance(lr, torch.Tensor) and lr.device.type == self.device.type and lr.dtype == torch.float32:
            return lr
        return torch.tensor(float(lr), dtype=torch.float32, device=self.device)

    def _keep_lr_tensors(self) -> None:
        """Put the graphs' lr tensors back where something replaced them, keeping the new value."""
        for group, lr in zip(self.optimizer.param_groups, self.lrs):
            if group["lr"] is lr:
                continue
            if isinstance(group["lr"], torch.Tensor):
                lr.copy_(group["lr"])
            else:
                lr.fill_(float(group["lr"]))
            group["lr"] = lr

    @contextlib.contextmanager
    def _on_side_stream(self):
        if self._side_stream is None:
            yield
            return
        current = torch.cuda.current_stream(self.device)
        self._side_stream.wait_stream(current)
        with torch.cuda.stream(self._side_stream):
            yield
        current.wait_stream(self._side_stream)

    def _capture(self, inputs, labels) -> _Captured:
        captured = _Captured(inputs.clone(), labels.clone())  # clone keeps channels_last
        self.optimizer.zero_grad(set_to_none=True)  # the graph allocates (and owns) its gradients

        def body():
            captured.outputs = self.eager.update(captured.inputs, captured.labels)

        captured.replay = self.capture(body)
        return captured

    def __call__(self, inputs, labels, loss_sum, correct) -> None:
        self._keep_lr_tensors()
        size = labels.shape[0]
        captured = self.graphs.get(size)
        if captured is None:
            if self.eager_runs[size] < self.warmup_steps:
                self.eager_runs[size] += 1
                with self._on_side_stream():
                    self.eager(inputs, labels, loss_sum, correct)
                return
            captured = self.graphs[size] = self._capture(inputs, labels)
        captured.inputs.copy_(inputs)
        captured.labels.copy_(labels)
        captured.replay()
        batch_loss, batch_correct = captured.outputs
        loss_sum.add_(batch_loss, alpha=size)
        correct.add_(batch_correct)


def make_step(mode: str, model, optimizer, amp: bool, device: torch.device):
    """The step for STEP_MODE `mode` on `device`; the eager one, or one of this module's."""
    concrete = resolve_mode(mode, device)
    if concrete == "eager":
        return EagerStep(model, optimizer, amp, device)
    if concrete == "compile":
        return CompiledStep(model, optimizer, amp, device, compile_options("compile", device))
    if device.type != "cuda":
        raise ValueError(
            f"STEP_MODE={mode!r} captures the training step in a CUDA graph and needs a CUDA GPU, "
            f"but this run trains on {device.type}. Use STEP_MODE='auto' (CUDA graphs when there is a GPU, "
            "eager otherwise), 'eager', or 'compile'.")
    return GraphedStep(model, optimizer, amp, device, compile_model=concrete == "compile_cuda_graph")


# ----------------------------------------------------------------------------- the one-cycle schedule


def onecycle_factor(step: int, total: int, warmup_fraction: float) -> float:
    """lr multiplier at 0-based `step` of `total`: linear up to 1 over the warm-up, then linear down towards 0."""
    warmup = round(warmup_fraction * total)
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / (total - warmup + 1))


def onecycle_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float):
    """The one-cycle schedule over `total_steps` batches; step it after every batch."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, functools.partial(onecycle_factor, total=total_steps, warmup_fraction=warmup_fraction))
