"""What a model gets right and wrong on the test set: confusion matrix, per-class accuracy, mistakes.

The engine stores, with each results file, the test-set predictions of the
weights it reports as best (the epoch of lowest test loss), in compact form
(`cifar_helpers.engine.record.prediction_record`): the 10×10 confusion matrix
(counts; rows true class, columns predicted) and the most confident mistakes
as test-image indices with their true and predicted classes and confidence.
Everything else (per-class accuracy, the gallery) is derived from those here,
without the model or a GPU.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from cifar_helpers.core.paths import repo_path
from cifar_helpers.report.results import model_labels


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each true class (the diagonal over the row sums); NaN for a class with no test image."""
    confusion = np.asarray(confusion, dtype=np.float64)
    totals = confusion.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(confusion) / totals, np.nan)


def per_class_table(results: Mapping[str, Mapping[str, Any]], classes: Sequence[str],
                    labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Test accuracy (%) per class (rows) and model (columns), from each run's stored confusion matrix;
    the columns are named by `labels`, by default each model's label (`results.model_label`).

    Models whose results file has no `predictions` (older files) are left out."""
    labels = model_labels(results) if labels is None else labels
    columns = {}
    for model, result in results.items():
        predictions = result.get("predictions")
        if predictions:
            columns[labels.get(model, model)] = 100 * per_class_accuracy(np.asarray(predictions["confusion"]))
    frame = pd.DataFrame(columns, index=pd.Index(list(classes), name="class"))
    return frame.round(2)


PER_CLASS_NOTES = (
    "Test accuracy (%) per true class, of each model's weights with the lowest test loss (its best epoch).",
    "▲ marks each model's best class, ▼ its worst.",
)


def marked_per_class(table: pd.DataFrame) -> pd.DataFrame:
    """`per_class_table` as text with 2 decimals, each model's best class marked ▲ and worst ▼ (every one of
    them when classes tie: 1,000 test images a class make ties likely)."""
    shown = table.map(lambda value: f"{value:.2f}")
    for column in table.columns:
        values = table[column]
        shown.loc[values == values.max(), column] += " ▲"
        shown.loc[values == values.min(), column] += " ▼"
    return shown


def write_per_class(table: pd.DataFrame, folder=None) -> list:
    """per_class.csv (numbers), .md and .tex beside Table 1, in `folder` (a notebook's RESULTS_DIR: relative to
    the repository, None for <repo>/results). A table with no model (no run has predictions) writes nothing."""
    from cifar_helpers.report.tables import latex_tabular, markdown_table, write_tables

    if table.empty:
        return []
    shown = marked_per_class(table).reset_index()
    text_columns = {table.index.name}
    markdown = markdown_table(shown, "Per-class test accuracy (%).", PER_CLASS_NOTES, text_columns)
    latex = latex_tabular(shown, "Per-class test accuracy", "cifar_helpers.report.predictions.write_per_class",
                          PER_CLASS_NOTES, text_columns)
    return write_tables(repo_path(folder, "results"), "per_class", table, markdown, latex)


def test_images_for(result: Mapping[str, Any], data_dir) -> tuple[np.ndarray | None, str]:
    """The test images a run was evaluated on, in its order (its SUBSET applied), read from `data_dir`,
    or None with the reason. The data must be the same the run read (same content digest)."""
    import warnings

    from cifar_helpers.data.cifar10 import load_cifar10, subset
    from cifar_helpers.data.errors import CIFAR10Error

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the training notebooks showed the data's warnings
            data = load_cifar10(data_dir, download=False)
    except (CIFAR10Error, OSError) as err:
        return None, f"the test images are not there ({str(err).splitlines()[0]})"
    recorded = result.get("data_digest")
    if recorded and recorded != data.digest:
        return None, (f"the data in {data_dir} are not the data this run read (content digest {data.digest}, "
                      f"the run's {recorded}); point DATA_DIR at the data it trained on")
    params = result.get("params") or {}
    if params.get("subset"):
        data = subset(data, *params["subset"], seed=params.get("seed", 23))
    return data.test_images.numpy(), ""
