"""What a model gets right and wrong on the test set: confusion matrix, per-class accuracy, mistakes.

The engine stores, with each results file, the test-set predictions of the
weights it reports as best (the epoch of lowest test loss), in compact form:
the 10×10 confusion matrix (counts; rows true class, columns predicted) and
the most confident mistakes as test-image indices with their true and
predicted classes and confidence. Everything else (per-class accuracy, the
gallery) is derived from those here, without the model, torch or a GPU.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

MISTAKES_KEPT = 100  # the most confident mistakes stored per run: enough for any gallery


def confusion_matrix(labels: Sequence[int], predicted: Sequence[int], n_classes: int = 10) -> np.ndarray:
    """counts[true, predicted], int64."""
    labels, predicted = np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    if labels.shape != predicted.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predicted.shape} differ in shape")
    return np.bincount(labels * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each true class (the diagonal over the row sums); NaN for a class with no test image."""
    confusion = np.asarray(confusion, dtype=np.float64)
    totals = confusion.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(confusion) / totals, np.nan)


def confident_mistakes(labels: Sequence[int], predicted: Sequence[int], confidence: Sequence[float],
                       k: int = MISTAKES_KEPT) -> list[list]:
    """The `k` wrong predictions with the highest confidence: [[index, true, predicted, confidence], ...].

    Ties keep the lower index first, so the list is the same on every machine."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    confidence = np.asarray(confidence, dtype=np.float64)
    wrong = np.flatnonzero(labels != predicted)
    order = wrong[np.lexsort((wrong, -confidence[wrong]))][:k]
    return [[int(i), int(labels[i]), int(predicted[i]), round(float(confidence[i]), 6)] for i in order]


def prediction_record(labels, predicted, confidence, epoch: int, n_classes: int = 10) -> dict[str, Any]:
    """The compact `predictions` entry of a results file."""
    return {
        "epoch": int(epoch),
        "confusion": confusion_matrix(labels, predicted, n_classes).tolist(),
        "mistakes": confident_mistakes(labels, predicted, confidence),
    }


def per_class_table(results: Mapping[str, Mapping[str, Any]], classes: Sequence[str],
                    labels: Mapping[str, str]) -> pd.DataFrame:
    """Test accuracy (%) per class (rows) and model (columns), from each run's stored confusion matrix.

    Models whose results file has no `predictions` (older files) are left out."""
    columns = {}
    for model, result in results.items():
        predictions = result.get("predictions")
        if predictions:
            columns[labels.get(model, model)] = 100 * per_class_accuracy(np.asarray(predictions["confusion"]))
    frame = pd.DataFrame(columns, index=pd.Index(list(classes), name="class"))
    return frame.round(2)
