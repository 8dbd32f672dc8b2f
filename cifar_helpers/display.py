"""What the training notebooks show about a finished run, in tables and words."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from .results import MODEL_LABELS, best_points, history_frame


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
