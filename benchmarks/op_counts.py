"""Count the operators one training step dispatches, per phase, with torch.profiler.

    python benchmarks/op_counts.py [--models dnn,cnn,resnet,custom_resnet] [--optimizers for-loop,foreach,fused]
    python benchmarks/op_counts.py --launches --modes eager,cuda_graph   # on a GPU

On a GPU every compute operator is at least one kernel launch, and at batch
64 the Custom ResNet's step is bound by those launches (and the Python that
issues them), not by arithmetic. This counts, on whatever device, the aten
operators a step of the engine's eager mode dispatches: all of them, and the
"launch-like" ones (views, `detach`, `empty` and friends launch nothing).
Phases: forward (with loss and accuracy), backward, optimizer, and the
metric accumulation after the update.

With `--launches` (CUDA only) it counts instead, for each engine step mode,
the host-side launch calls one steady-state step makes (kernel launches,
graph launches, copies), the kernels the GPU runs, and the median step time
(CUDA events, 20 steps): the launch-bound step against the graph replay.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cifar_helpers.engine.config import TrainConfig  # noqa: E402
from cifar_helpers.models import MODEL_NAMES, build_model  # noqa: E402
from cifar_helpers.engine.fast import GRAPH_WARMUP_STEPS, make_step, resolve_mode  # noqa: E402
from cifar_helpers.engine.steps import EagerStep  # noqa: E402
from cifar_helpers.engine.train import make_optimizer  # noqa: E402

# Operators that only make views, metadata or uninitialised memory: no kernel on a GPU.
NO_KERNEL_OPS = frozenset(f"aten::{name}" for name in (
    "view", "_unsafe_view", "reshape", "flatten", "t", "transpose", "permute", "expand", "as_strided",
    "detach", "alias", "slice", "select", "unsqueeze", "squeeze", "resolve_conj", "resolve_neg",
    "empty", "empty_like", "empty_strided", "lift_fresh", "result_type", "to", "_to_copy_noop",
    "is_nonzero", "size", "stride", "numel", "contiguous",
))
OPTIMIZER_IMPLS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
PHASES = ("forward", "backward", "optimizer", "metrics")


def _phase(event, backward_started: bool) -> str:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("Optimizer.step"):
            return "optimizer"
        if parent.name.startswith("Optimizer.zero_grad"):
            return "forward"
        if parent.name.startswith("autograd::engine"):
            return "backward"
        parent = parent.cpu_parent
    return "metrics" if backward_started else "forward"


def count_step_ops(step, inputs, labels) -> dict[str, collections.Counter]:
    """Profile one call of `step`; returns {"all": Counter(phase), "launch": Counter(phase), "names": Counter}."""
    loss_sum = torch.zeros((), device=inputs.device)
    correct = torch.zeros((), dtype=torch.int64, device=inputs.device)
    for _ in range(2):  # lazy state (optimizer moments, autograd) out of the count
        step(inputs, labels, loss_sum, correct)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(inputs, labels, loss_sum, correct)
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    counts = {"all": collections.Counter(), "launch": collections.Counter(), "names": collections.Counter()}
    backward_started = False
    for event in events:
        backward_started |= event.name.startswith("autograd::engine")
        parent = event.cpu_parent
        top_level = event.name.startswith("aten::") and not (parent is not None and parent.name.startswith("aten::"))
        if not top_level:
            continue
        phase = _phase(event, backward_started)
        counts["all"][phase] += 1
        if event.name not in NO_KERNEL_OPS:
            counts["launch"][phase] += 1
            counts["names"][event.name] += 1
    return counts


def median_step_ms(step, inputs, labels, steps: int = 5) -> float:
    """Median wall milliseconds of a step (host clock; on a GPU, synchronized)."""
    loss_sum = torch.zeros((), device=inputs.device)
    correct = torch.zeros((), dtype=torch.int64, device=inputs.device)
    times = []
    for _ in range(steps):
        begin = time.perf_counter()
        step(inputs, labels, loss_sum, correct)
        if inputs.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - begin))
    return sorted(times)[len(times) // 2]


def make_engine_step(model_name: str, optimizer_impl: str, batch_size: int, device: torch.device):
    cfg = TrainConfig.for_model(model_name)
    torch.manual_seed(cfg.seed)
    model = build_model(model_name, **cfg.model_options).to(device).train()
    impl = OPTIMIZER_IMPLS[optimizer_impl]
    if cfg.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay, **impl)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **impl)
    step = EagerStep(model, optimizer, amp=False, device=device)
    inputs = torch.randn(batch_size, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (batch_size,), device=device)
    return step, inputs, labels, sum(1 for _ in model.parameters())


def op_count_table(models, optimizer_impls, batch_size: int = 8, device: str = "cpu") -> list[dict]:
    rows = []
    for name in models:
        for impl in optimizer_impls:
            step, inputs, labels, n_params = make_engine_step(name, impl, batch_size, torch.device(device))
            counts = count_step_ops(step, inputs, labels)
            row = {"model": name, "optimizer": impl, "params": n_params, "step_ms": median_step_ms(step, inputs, labels),
                   "all": sum(counts["all"].values()), "launch": sum(counts["launch"].values())}
            row.update({f"launch_{phase}": counts["launch"][phase] for phase in PHASES})
            rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    header = ("| model | optimizer | tensors | aten ops | launch-like | forward | backward | optimizer | metrics "
              "| step ms |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [header]
    for r in rows:
        lines.append(f"| {r['model']} | {r['optimizer']} | {r['params']} | {r['all']} | {r['launch']} | "
                     f"{r['launch_forward']} | {r['launch_backward']} | {r['launch_optimizer']} | {r['launch_metrics']} | "
                     f"{r['step_ms']:.1f} |")
    return "\n".join(lines)


def count_cuda_launches(step, inputs, labels, timed_steps: int = 20) -> dict:
    """Host launch calls and device kernels of one steady-state step, and the median step milliseconds."""
    loss_sum = torch.zeros((), device=inputs.device)
    correct = torch.zeros((), dtype=torch.int64, device=inputs.device)
    for _ in range(GRAPH_WARMUP_STEPS + 2):  # warm-up, capture, one replay
        step(inputs, labels, loss_sum, correct)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        step(inputs, labels, loss_sum, correct)
        torch.cuda.synchronize()
    launch_names = collections.Counter(
        e.name for e in prof.events()
        if e.device_type == torch.autograd.DeviceType.CPU
        and ("LaunchKernel" in e.name or "GraphLaunch" in e.name or e.name.startswith(("cudaMemcpy", "cudaMemset"))))
    kernels = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    times = []
    for _ in range(timed_steps):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        step(inputs, labels, loss_sum, correct)
        end.record()
        end.synchronize()
        times.append(begin.elapsed_time(end))
    return {"launch_calls": sum(launch_names.values()),
            "graph_launches": sum(n for name, n in launch_names.items() if "GraphLaunch" in name),
            "kernels": kernels, "step_ms": sorted(times)[len(times) // 2]}


def launch_table(models, specs, batch_size: int = 64) -> list[dict]:
    device = torch.device("cuda")
    rows = []
    for name in models:
        for spec in specs:
            mode, _, precision = spec.partition("+")
            mode = resolve_mode(mode, device)
            cfg = TrainConfig.for_model(name, batch_size=batch_size, step_mode=mode, amp=precision == "bf16")
            torch.manual_seed(cfg.seed)
            torch.backends.cudnn.benchmark = True
            model = build_model(name, **cfg.model_options).to(device).to(memory_format=torch.channels_last).train()
            step = make_step(mode, model, make_optimizer(cfg, model, device), cfg.amp, device)
            inputs = torch.randn(batch_size, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
            labels = torch.randint(0, 10, (batch_size,), device=device)
            rows.append({"model": name, "mode": spec, **count_cuda_launches(step, inputs, labels)})
    return rows


def format_launch_table(rows: list[dict]) -> str:
    lines = ["| model | step mode | host launch calls | of them graph launches | GPU kernels | step ms (median) |",
             "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['mode']} | {r['launch_calls']} | {r['graph_launches']} | {r['kernels']} | "
              f"{r['step_ms']:.3f} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODEL_NAMES))
    parser.add_argument("--optimizers", default="for-loop,fused", help=f"from {', '.join(OPTIMIZER_IMPLS)}")
    parser.add_argument("--batch-size", type=int, default=8, help="the count does not depend on it")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--launches", action="store_true", help="count CUDA launches per step instead (GPU)")
    parser.add_argument("--modes", default="eager,cuda_graph", help="with --launches: step modes (+bf16 allowed)")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    impls = [o.strip() for o in args.optimizers.split(",") if o.strip()]
    for value, allowed, what in ((models, MODEL_NAMES, "--models"), (impls, tuple(OPTIMIZER_IMPLS), "--optimizers")):
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            parser.error(f"{what}: unknown {unknown}; choose from {', '.join(allowed)}")
    if args.launches:
        if not torch.cuda.is_available():
            parser.error("--launches counts CUDA launches and needs a GPU")
        specs = [m.strip() for m in args.modes.split(",") if m.strip()]
        bs = 64 if args.batch_size == 8 else args.batch_size
        print(f"Launches per steady-state training step, batch {bs} (torch {torch.__version__}, "
              f"{torch.cuda.get_device_name()}):")
        print(format_launch_table(launch_table(models, specs, bs)))
        return 0
    print(f"Operators dispatched by one eager training step (torch {torch.__version__}, {args.device}); "
          "launch-like = aten ops that launch a kernel on a GPU (views, detach, empty excluded).")
    print(format_table(op_count_table(models, impls, args.batch_size, args.device)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
