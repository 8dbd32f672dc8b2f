"""On the CPU: a trained checkpoint's training step against fresh weights, with and without flushing denormals.

    python benchmarks/cpu_denormals.py CHECKPOINT [CHECKPOINT ...] [--steps 8] [--rounds 3]

A CHECKPOINT is a run's `last.pt` (its config names the model and the optimizer). For each, four setups train
the same seeded batches of 64 with the engine's eager step, in alternating rounds within one process, so that
load from other work hits them alike: the seed-23 weights with a fresh optimizer; the checkpoint's weights and
optimizer state; the same with the CPU's flush-to-zero flag (`torch.set_flush_denormal(True)`); the same with
the engine's FLUSH_DENORMALS=True, which sets every denormal number of the weights and the optimizer's state to
zero after each optimizer step. It prints the median seconds per step of each and the share of denormal numbers
(nonzero, below float32's smallest normal) in the checkpoint's weights and optimizer state. On CPUs that
handle denormals in microcode, a late Adam checkpoint trains several times slower than fresh weights; both
kinds of flushing remove most of the slowdown, and both change the numbers of a run.

It runs on one thread: `torch.set_flush_denormal` sets the calling thread's flags only, so with more threads
OpenMP's workers would go on computing with denormals and the flag's column would be only partly flushed. That
is why the engine's setting zeroes the numbers instead: it reaches every thread and device alike.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from cifar_helpers.engine import checkpoint  # noqa: E402
from cifar_helpers.engine.config import TrainConfig  # noqa: E402
from cifar_helpers.engine.steps import EagerStep  # noqa: E402
from cifar_helpers.engine.train import make_optimizer  # noqa: E402
from cifar_helpers.models import build_model  # noqa: E402
from cifar_helpers.models.summary import denormal_share  # noqa: E402


def optimizer_tensors(state: dict) -> list[torch.Tensor]:
    return [t for per_param in state["state"].values() for t in per_param.values() if torch.is_tensor(t)]


def trainer(saved: dict | None, cfg: TrainConfig) -> EagerStep:
    device = torch.device("cpu")
    torch.manual_seed(23)
    model = build_model(cfg.model, **cfg.model_options)
    optimizer = make_optimizer(cfg, model, device)
    if saved is not None:
        model.load_state_dict(saved["model"])
        # a copy: load_state_dict keeps the given tensors as the optimizer's state, which each step then changes
        optimizer.load_state_dict(copy.deepcopy(saved["optimizer"]))
    model.train()
    return EagerStep(model, optimizer, False, device)


def seconds_per_step(step: EagerStep, batches, flush: bool) -> float:
    torch.set_flush_denormal(flush)
    times = []
    try:
        for inputs, labels in batches:
            loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.int64)
            start = time.perf_counter()
            step(inputs, labels, loss_sum, correct)
            times.append(time.perf_counter() - start)
    finally:
        torch.set_flush_denormal(False)  # torch's default
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # see above: flushing reaches the calling thread only
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g))
               for _ in range(args.steps + 1)]
    print(f"torch {torch.__version__}, 1 CPU thread, batch 64, {args.steps} steps x "
          f"{args.rounds} rounds, median seconds a step")
    print("| checkpoint | model | epoch | fresh weights | checkpoint | checkpoint, CPU flag flushing | "
          "checkpoint, FLUSH_DENORMALS | denormal share: weights, optimizer state |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for path in args.checkpoints:
        saved = checkpoint.load(path)
        cfg = TrainConfig.from_params(saved["config"])
        shares = (denormal_share(saved["model"].values()), denormal_share(optimizer_tensors(saved["optimizer"])))
        zeroing = dataclasses.replace(cfg, flush_denormals=True)
        setups = {"fresh": (None, cfg, False), "checkpoint": (saved, cfg, False), "flag": (saved, cfg, True),
                  "zeroed": (saved, zeroing, False)}
        timings: dict[str, list[float]] = {name: [] for name in setups}
        for _ in range(args.rounds):  # a fresh trainer each round: every round starts from the same state
            for name, (state, config, flush) in setups.items():
                timings[name].append(seconds_per_step(trainer(state, config), batches, flush))
        fresh, kept, flagged, zeroed = (statistics.median(timings[name]) for name in setups)
        print(f"| {path} | {cfg.model} | {saved['epoch']} | {fresh:.3f} | {kept:.3f} | {flagged:.3f} | {zeroed:.3f} | "
              f"{100 * shares[0]:.3f}%, {100 * shares[1]:.3f}% |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
