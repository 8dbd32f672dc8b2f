"""On a CUDA GPU: do the graph and compile step modes train exactly like eager?

    python benchmarks/graph_check.py [--data-dir DIR] [--models ...] [--compile] [--train-epochs 5 [--no-equivalence]]

1. Step equivalence. For each model, the same seed, data and per-batch
   learning-rate schedule, trained for 4 epochs of 1,000 images at batch 64
   (15 full batches and a partial one of 40, so both graphs are captured and
   replayed), cudnn in deterministic mode and TF32 off, against eager:
   - the first 12 steps' losses (10 of them graph replays) must agree to
     1e-4: a wrong step (stale gradients, a missed lr, a double update) shows
     at once, while rounding has had no time to grow;
   - the per-epoch losses and final weights must agree to the tolerance, or
     stay within 10x of what a second eager run differs from the first (the
     noise floor: cuDNN's batch-norm kernels in channels_last may reduce in
     any order, and 64 steps amplify a last-bit difference to percents).
   The Custom ResNet runs with dropout 0 here (graph replays draw other
   random numbers than eager), and once more with dropout 0.1 and bf16,
   where only a falling loss is checked.
2. Short training (`--train-epochs N`): `train_model` with the report's
   protocol on the full data, eager against cuda_graph, for the models in
   `--train-models`: best test accuracy and seconds of each.

Prints PASS/FAIL lines and exits 1 when a check fails. Needs a CUDA GPU;
tests/test_steps.py checks the same bookkeeping on the CPU with a fake capture.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from cifar_helpers.data.batches import DeviceData  # noqa: E402
from cifar_helpers.engine.config import TrainConfig  # noqa: E402
from cifar_helpers.data.cifar10 import channel_stats, load_cifar10, subset  # noqa: E402
from cifar_helpers.data.errors import CIFAR10Warning  # noqa: E402
from cifar_helpers.models import MODEL_NAMES, build_model  # noqa: E402
from cifar_helpers.engine.fast import make_step, onecycle_factor  # noqa: E402
from cifar_helpers.engine.train import make_optimizer, train_model, train_one_epoch  # noqa: E402

EPOCHS, N_TRAIN, N_TEST, BATCH = 4, 1000, 500, 64
DEVICE = torch.device("cuda")
TOLERANCE = {"cuda_graph": 1e-4, "compile_cuda_graph": 2e-2, "compile": 2e-2}
EARLY_STEPS, EARLY_TOLERANCE = 12, 1e-4  # steps 3-12 are the first replays of the batch-64 graph
NOISE_FACTOR = 10


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


class RecordingStep:
    """Calls a training step and keeps each batch's mean loss (a host sync per step; fine in a check)."""

    def __init__(self, step):
        self.step, self.losses = step, []

    @property
    def model(self):
        return self.step.model

    def __call__(self, inputs, labels, loss_sum, correct) -> None:
        batch_sum = torch.zeros_like(loss_sum)
        self.step(inputs, labels, batch_sum, correct)
        loss_sum.add_(batch_sum)
        self.losses.append(batch_sum.item() / labels.shape[0])


def train_short(name: str, data, mode: str, model_options: dict, amp: bool = False,
                optimizer_mode: str | None = None) -> dict:
    """4 short epochs in step `mode`, with the optimizer made as for `optimizer_mode` (default: `mode`)."""
    cfg = TrainConfig.for_model(name, batch_size=BATCH, step_mode=mode, amp=amp, epochs=EPOCHS,
                                model_options=model_options)
    device = DEVICE
    torch.manual_seed(cfg.seed)
    model = build_model(name, **cfg.model_options).to(device).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(dataclasses.replace(cfg, step_mode=optimizer_mode or mode), model, device)
    steps_per_epoch = -(-N_TRAIN // BATCH)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: onecycle_factor(k, EPOCHS * steps_per_epoch, 0.2))
    mean, std = channel_stats(data.train_images)
    device_data = DeviceData(data.train_images, data.train_labels, data.test_images, data.test_labels,
                             mean, std, device, channels_last=True)
    step = RecordingStep(make_step(mode, model, optimizer, amp, device))
    losses = []
    for epoch in range(1, EPOCHS + 1):
        loss, _, _ = train_one_epoch(step, device_data, cfg, epoch, "lines", scheduler.step)
        losses.append(loss)
    weights = torch.cat([p.detach().float().flatten() for p in model.parameters()])
    return {"losses": torch.tensor(losses), "step_losses": torch.tensor(step.losses), "weights": weights,
            "lr": float(optimizer.param_groups[0]["lr"]), "captured": getattr(step.step, "captured_sizes", None)}


def differences(result: dict, reference: dict) -> dict:
    """Relative differences of a run against the reference run: early steps, epoch losses, weights."""
    return {"early": relative(result["step_losses"][:EARLY_STEPS], reference["step_losses"][:EARLY_STEPS]),
            "losses": relative(result["losses"], reference["losses"]),
            "weights": relative(result["weights"], reference["weights"])}


def check_equivalence(models, modes, data) -> bool:
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    ok = True
    for name in models:
        options = {"dropout": 0.0} if name == "custom_resnet" else {}
        for mode in modes:
            # The reference: eager with this mode's optimizer (a float32 device-tensor lr, fused), since
            # a last-bit difference in the lr alone grows to percents within 64 steps at lr 0.1.
            reference = train_short(name, data, "eager", options, optimizer_mode=mode)
            noise = differences(train_short(name, data, "eager", options, optimizer_mode=mode), reference)
            print(f"NOISE {name:<13} eager vs eager ({mode}'s optimizer): first {EARLY_STEPS} steps "
                  f"{noise['early']:.2e}, epoch losses {noise['losses']:.2e}, weights {noise['weights']:.2e}",
                  flush=True)
            started = time.perf_counter()
            result = train_short(name, data, mode, options)
            diff = differences(result, reference)
            allowed = max(TOLERANCE[mode], NOISE_FACTOR * max(noise["losses"], noise["weights"]))
            captured_ok = mode == "compile" or result["captured"] == sorted({BATCH, N_TRAIN % BATCH})
            lr_ok = abs(result["lr"] - reference["lr"]) <= 1e-6 * max(1e-3, abs(reference["lr"]))
            passed = (diff["early"] <= EARLY_TOLERANCE and max(diff["losses"], diff["weights"]) <= allowed
                      and captured_ok and lr_ok)
            ok &= passed
            print(f"{'PASS' if passed else 'FAIL'} {name:<13} {mode:<18} vs eager: first {EARLY_STEPS} steps "
                  f"{diff['early']:.2e} (tolerance {EARLY_TOLERANCE:.0e}); epoch losses {diff['losses']:.2e}, "
                  f"weights {diff['weights']:.2e} (allowed {allowed:.1e}: tolerance {TOLERANCE[mode]:.0e} or "
                  f"{NOISE_FACTOR}x eager's noise); graphs for batch sizes {result['captured']}; final lr "
                  f"{result['lr']:.3g} vs {reference['lr']:.3g}; {time.perf_counter() - started:.1f} s", flush=True)
    torch.backends.cudnn.deterministic = False
    return ok


def check_dropout_bf16(data) -> bool:
    """Dropout and bf16 in the graph: random masks differ from eager, so only check that it learns."""
    torch.backends.cudnn.benchmark = True
    result = train_short("custom_resnet", data, "cuda_graph", {"dropout": 0.1}, amp=True)
    losses = result["losses"]
    passed = bool(torch.isfinite(losses).all() and losses[-1] < losses[0])
    print(f"{'PASS' if passed else 'FAIL'} custom_resnet cuda_graph+bf16 dropout 0.1: epoch losses "
          f"{[round(v, 4) for v in losses.tolist()]} (finite and falling)", flush=True)
    return passed


def check_training(models, epochs: int, data) -> None:
    for name in models:
        accs = {}
        for mode in ("eager", "cuda_graph"):
            cfg = TrainConfig.for_model(name, epochs=epochs, step_mode=mode)
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                record = train_model(cfg, data, device="cuda", results_dir=tmp, checkpoint_dir=tmp,
                                     log=lambda line: None)
            accs[mode] = record["best_acc"]["test_acc"]
            train_s = [r["train_seconds"] for r in record["history"]]
            print(f"TRAIN {name:<13} {mode:<10} {epochs} epochs, report protocol fp32: best test accuracy "
                  f"{100 * accs[mode]:.2f}% (epoch {record['best_acc']['epoch']}); train s/epoch "
                  f"{sorted(train_s)[len(train_s) // 2]:.2f}; wall {time.perf_counter() - started:.1f} s", flush=True)
        print(f"TRAIN {name:<13} accuracy difference cuda_graph - eager: "
              f"{100 * (accs['cuda_graph'] - accs['eager']):+.2f} points (target: within 1 point at the best epoch "
              "of the full protocol)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--models", default=",".join(MODEL_NAMES))
    parser.add_argument("--compile", action="store_true", help="also check compile_cuda_graph (a compile per model)")
    parser.add_argument("--compile-models", default="cnn", help="models for --compile")
    parser.add_argument("--train-epochs", type=int, default=0, help="short training check, eager vs cuda_graph")
    parser.add_argument("--train-models", default="dnn,cnn")
    parser.add_argument("--no-equivalence", action="store_true", help="only the short training check")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("graph_check needs a CUDA GPU (tests/test_steps.py covers the CPU side)")
    # Strict fp32: the first steps are compared to 1e-4, and TF32's coarser rounding only adds noise.
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CIFAR10Warning)
        full = load_cifar10(args.data_dir, download=False)
    small = subset(full, N_TRAIN, N_TEST)
    print(f"graph_check on {torch.cuda.get_device_name()}, torch {torch.__version__}, data {small.source}", flush=True)
    ok = True
    if not args.no_equivalence:
        ok &= check_equivalence(args.models.split(","), ["cuda_graph"], small)
        ok &= check_dropout_bf16(small)
    if args.compile:
        ok &= check_equivalence(args.compile_models.split(","), ["compile_cuda_graph"], small)
    if args.train_epochs:
        check_training(args.train_models.split(","), args.train_epochs, full)
    print("graph_check:", "all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
