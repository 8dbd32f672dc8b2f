"""On the CPU: the engine's eager training step in NCHW against channels_last, side by side.

    python benchmarks/cpu_memory_format.py [--threads 2] [--steps 20] [--rounds 3]

For each model (the notebooks' defaults), the same seeded batches of 64
are trained from the same initial weights in both memory formats, in
alternating rounds within one process, so that load from other work hits
both alike. Prints the median seconds per step of each format, the ratio,
and the largest difference of the losses after the timed steps (the formats
pick different convolution kernels, so the last digits may differ).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from cifar_helpers.engine.config import TrainConfig  # noqa: E402
from cifar_helpers.models import MODEL_NAMES, build_model  # noqa: E402
from cifar_helpers.engine.steps import EagerStep  # noqa: E402
from cifar_helpers.engine.train import make_optimizer  # noqa: E402


def run(model_name: str, memory_format: torch.memory_format, batches, steps: int) -> tuple[float, list[float]]:
    """Seconds per step (median) and the losses, training from the seed-23 weights."""
    device = torch.device("cpu")
    cfg = TrainConfig.for_model(model_name)
    torch.manual_seed(23)
    model = build_model(model_name, **cfg.model_options).to(memory_format=memory_format)
    step = EagerStep(model, make_optimizer(cfg, model, device), False, device)
    model.train()
    times, losses = [], []
    for inputs, labels in batches[:steps]:
        inputs = inputs.contiguous(memory_format=memory_format)
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.int64)
        start = time.perf_counter()
        step(inputs, labels, loss_sum, correct)
        times.append(time.perf_counter() - start)
        losses.append(loss_sum.item() / len(labels))
    return statistics.median(times[1:]), losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODEL_NAMES))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g))
               for _ in range(args.steps)]
    print(f"torch {torch.__version__}, {args.threads} CPU threads, batch 64, {args.steps} steps x {args.rounds} rounds")
    print("| model | NCHW s/step | channels_last s/step | channels_last / NCHW | max loss difference |")
    print("|---|---:|---:|---:|---:|")
    for name in args.models.split(","):
        timings = {torch.contiguous_format: [], torch.channels_last: []}
        losses = {}
        for _ in range(args.rounds):
            for memory_format in timings:
                seconds, losses[memory_format] = run(name, memory_format, batches, args.steps)
                timings[memory_format].append(seconds)
        plain, last = (statistics.median(timings[f]) for f in timings)
        diff = max(abs(a - b) for a, b in zip(losses[torch.contiguous_format], losses[torch.channels_last]))
        print(f"| {name} | {plain:.4f} | {last:.4f} | {last / plain:.2f} | {diff:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
