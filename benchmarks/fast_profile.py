"""Run notebook 05's training with a parameter profile and time it: the fast-profile check.

    python benchmarks/fast_profile.py [--params params/fast.yaml] [--data-dir DIR] [--set NAME=VALUE ...]

Executes the notebook's own `parameters` cell, applies the profile's values
for 05 and any `--set`, and builds the run as the notebook does
(`cifar_helpers.engine.parameters.training_run`), then trains from scratch (the
profile's checkpoints are removed first) and reports the best test accuracy
and the wall seconds from the start of training (model, data to the device,
graph capture, every epoch, evaluation and checkpoints included) against the
issue's target: >= 90.5% in < 60 s on one H100 with the JPEG copy. Needs no
Jupyter, so it runs on a machine with torch alone.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import sys
import time
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from cifar_helpers.core.files import atomic_write_json  # noqa: E402
from cifar_helpers.data.cifar10 import load_cifar10  # noqa: E402
from cifar_helpers.data.errors import CIFAR10Warning  # noqa: E402
from cifar_helpers.engine.parameters import TrainingRun, declared_parameters, training_run  # noqa: E402
from cifar_helpers.workbook.run_all import load_profile  # noqa: E402
from cifar_helpers.engine.train import train_model  # noqa: E402

TARGET_ACC, TARGET_SECONDS = 0.905, 60.0


def parse_setting(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name.isupper():
        raise argparse.ArgumentTypeError(f"--set takes NAME=VALUE with an UPPERCASE name, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value  # a bare string


def build_config(profile_path: str | None, settings: dict) -> TrainingRun:
    """Notebook 05's parameters cell, with the profile and `settings` applied, as the notebook's run."""
    namespace = declared_parameters("05_custom_resnet")
    profile = load_profile(profile_path)
    namespace.update({**profile.for_notebook("05_custom_resnet", set(namespace)), **settings})
    return training_run("custom_resnet", namespace)


def summarize(record: dict, wall: float) -> dict:
    history = record["history"]
    best = record["best_acc"]
    return {
        "best_test_acc": best["test_acc"], "best_acc_epoch": best["epoch"],
        "final_test_acc": history[-1]["test_acc"], "epochs": len(history),
        "wall_seconds_from_start_of_training": wall,
        "train_seconds": sum(r["train_seconds"] for r in history),
        "eval_seconds": sum(r["eval_seconds"] for r in history),
        "first_epoch_train_seconds": history[0]["train_seconds"],
        "later_epoch_train_seconds": (sorted(r["train_seconds"] for r in history[1:])[len(history[1:]) // 2]
                                      if len(history) > 1 else None),
        "device": record["device_name"], "torch": record["versions"]["torch"],
        "data": record["data_source"], "params": record["params"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params/fast.yaml", help="profile file (YAML), as for make run")
    parser.add_argument("--data-dir", default=None, help="sets DATA_DIR")
    parser.add_argument("--device", default=None, help="sets DEVICE")
    parser.add_argument("--set", dest="settings", type=parse_setting, action="append", default=[],
                        metavar="NAME=VALUE", help="any other notebook parameter, e.g. EPOCHS=2")
    parser.add_argument("--json", default=None, help="write the summary and history here")
    args = parser.parse_args(argv)
    settings = dict(args.settings)
    if args.data_dir is not None:
        settings["DATA_DIR"] = args.data_dir
    if args.device is not None:
        settings["DEVICE"] = args.device

    run = build_config(args.params, settings)
    config, device = run.config, run.device
    print(f"profile {args.params} + {settings or 'no overrides'}:\n  {config}", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CIFAR10Warning)
        data = load_cifar10(run.data_dir, download=False)
    shutil.rmtree(run.checkpoint_dir / config.model, ignore_errors=True)  # a fresh run: a resumed one would time nothing

    started = time.perf_counter()
    record = train_model(config, data, **run.train_kwargs())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    summary = summarize(record, time.perf_counter() - started)

    full = len(data.train_labels) == 50_000 and config.subset is None
    verdict = ("PASS" if summary["best_test_acc"] >= TARGET_ACC and summary["wall_seconds_from_start_of_training"]
               < TARGET_SECONDS else "MISS") if full and device.type == "cuda" else "n/a (not full data on a GPU)"
    print(f"best test accuracy {100 * summary['best_test_acc']:.2f}% (epoch {summary['best_acc_epoch']}), "
          f"final {100 * summary['final_test_acc']:.2f}%, {summary['epochs']} epochs, "
          f"{summary['wall_seconds_from_start_of_training']:.1f} s wall from the start of training "
          f"({summary['train_seconds']:.1f} s training, {summary['eval_seconds']:.1f} s evaluation); "
          f"target >= {100 * TARGET_ACC:.1f}% in < {TARGET_SECONDS:.0f} s: {verdict}")
    summary["verdict"] = verdict
    if args.json:
        atomic_write_json(Path(args.json), {**summary, "history": record["history"]})
    return summary


if __name__ == "__main__":
    main()
