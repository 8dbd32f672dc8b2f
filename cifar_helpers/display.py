"""What the training notebooks show about a finished run, in tables and words."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from .catalog import MODEL_LABELS
from .results import best_points, history_frame


def metrics_table(result: Mapping[str, Any], digits: int = 4) -> pd.DataFrame:
    """Per-epoch losses, accuracies (%) and learning rate, without timings.

    These numbers are seeded and exact on the CPU, so nbval can check them.
    """
    frame = history_frame(result)
    table = frame[["epoch", "train_loss", "train_acc_pct", "test_loss", "test_acc_pct", "lr"]]
    table = table.rename(columns={"train_acc_pct": "train_acc_%", "test_acc_pct": "test_acc_%"})
    return table.round(digits).set_index("epoch")


def best_epoch_sentence(result: Mapping[str, Any]) -> str:
    """One sentence: where the run peaked, in the report's terms."""
    best = best_points(result)
    label = MODEL_LABELS[result["model"]]
    sentence = (f"{label}: the lowest test loss, {best.test_loss:.4f}, came at epoch {best.loss_epoch} "
                f"of {len(result['history'])} (test accuracy {100 * best.acc_at_loss_epoch:.2f}%)")
    if best.acc_epoch == best.loss_epoch:
        sentence += ", which is also the epoch of the highest accuracy."
    else:
        sentence += (f"; the highest test accuracy, {100 * best.test_acc:.2f}%, came at epoch "
                     f"{best.acc_epoch} (test loss {best.loss_at_acc_epoch:.4f}).")
    if result.get("stopped_early"):
        sentence += f" Early stopping ended the run after epoch {result['stop_epoch']}."
    return sentence


def protocol_table(config) -> pd.DataFrame:
    """The training protocol a run will use, as a small two-column table (not the config's repr)."""
    optimizer = (f"SGD, lr {config.lr:g}, momentum {config.momentum:g}"
                 + (" (Nesterov)" if config.nesterov else "") if config.optimizer == "sgd"
                 else f"Adam, lr {config.lr:g}")
    schedule = {"none": "constant learning rate",
                "step": f"StepLR: × {config.gamma:g} every {config.step_size} epochs",
                "onecycle": f"one-cycle, {100 * config.warmup_fraction:g}% warm-up, per batch"}[config.scheduler]
    subset = (f"{config.subset[0]:,} train / {config.subset[1]:,} test images" if config.subset
              else "all 50,000 train / 10,000 test images")
    rows = {
        "model": MODEL_LABELS[config.model],
        "epochs": (f"at most {config.epochs}, early stopping after {config.patience} epochs without a lower "
                   "test loss" if config.patience else str(config.epochs)),
        "batch size": str(config.batch_size),
        "optimizer": f"{optimizer}, weight decay {config.weight_decay:g}",
        "schedule": schedule,
        "preprocessing": "normalisation" + (", random crop (pad 4), horizontal flip" if config.augment else " only"),
        "data": subset,
        "seed": str(config.seed),
        "precision": "bf16 autocast (GPU)" if config.amp else "fp32",
    }
    if "dropout" in config.model_options:
        rows["dropout"] = f"{config.model_options['dropout']:g} at the end of every block"
    if config.step_mode != "eager" or config.deterministic:
        rows["engine"] = f"step {config.step_mode}" + (", deterministic kernels" if config.deterministic else "")
    return pd.DataFrame({"setting": list(rows.values())}, index=pd.Index(list(rows), name="protocol"))


def normalization_table(mean, std) -> pd.DataFrame:
    """Per-channel mean and std (pixel values in [0, 1]) used for normalisation."""
    return pd.DataFrame({"mean": mean, "std": std}, index=pd.Index(["R", "G", "B"], name="channel")).round(4)


def bottleneck_verdict(comparison: pd.DataFrame) -> str:
    """State plainly whether the report's bottleneck claim holds in `compare_blocks()`'s numbers."""
    fewer_params = bool((comparison["bottleneck_params"] < comparison["basic_params"]).all())
    fewer_macs = bool((comparison["bottleneck_macs"] < comparison["basic_macs"]).all())
    more_convs = bool((comparison["bottleneck_convs"] > comparison["basic_convs"]).all())
    span = lambda col: f"{100 * comparison[col].min():.1f}% to {100 * comparison[col].max():.1f}%"  # noqa: E731
    verdict = "holds" if fewer_params and fewer_macs and more_convs else "does not hold"
    return (f"The report's claim {verdict}: at every stage width the bottleneck block has "
            f"{'one more convolution' if more_convs else 'no more convolutions'} than the basic block, "
            f"yet {span('params_ratio')} of its parameters and {span('macs_ratio')} of its multiply-adds "
            "(same input and output channels, inner width = width / 4).")
