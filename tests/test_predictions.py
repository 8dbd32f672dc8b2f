"""Confusion matrix, per-class accuracy and confident mistakes against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cifar_helpers.engine.record import confident_mistakes, confusion_matrix, prediction_record
from cifar_helpers.report.predictions import marked_per_class, per_class_accuracy, per_class_table, write_per_class

LABELS = [0, 0, 0, 1, 1, 2, 2, 2, 2]
PREDICTED = [0, 1, 0, 1, 1, 2, 0, 1, 2]
CONFIDENCE = [0.9, 0.8, 0.7, 0.6, 0.5, 0.95, 0.99, 0.8, 0.4]


def test_confusion_matrix_rows_are_true_columns_predicted():
    assert confusion_matrix(LABELS, PREDICTED, n_classes=3).tolist() == [[2, 1, 0], [0, 2, 0], [1, 1, 2]]
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix([0, 1], [0])


def test_per_class_accuracy_is_the_recall_of_each_true_class():
    accuracy = per_class_accuracy(np.array([[2, 1, 0, 0], [0, 2, 0, 0], [1, 1, 2, 0], [0, 0, 0, 0]]))
    assert accuracy[:3].tolist() == pytest.approx([2 / 3, 1.0, 0.5]) and math.isnan(accuracy[3])


def test_confident_mistakes_are_sorted_by_confidence_ties_by_index():
    assert confident_mistakes(LABELS, PREDICTED, CONFIDENCE) == [[6, 2, 0, 0.99], [1, 0, 1, 0.8], [7, 2, 1, 0.8]]
    assert confident_mistakes(LABELS, PREDICTED, CONFIDENCE, k=1) == [[6, 2, 0, 0.99]]


def test_per_class_table_reads_the_stored_record_and_skips_older_files():
    record = prediction_record(LABELS, PREDICTED, CONFIDENCE, epoch=7, n_classes=3)
    assert record["epoch"] == 7 and len(record["mistakes"]) == 3
    results = {"dnn": {"predictions": record}, "cnn": {"history": []}}  # cnn: an older file
    table = per_class_table(results, ["a", "b", "c"], {"dnn": "DNN", "cnn": "CNN"})
    assert list(table.columns) == ["DNN"] and table["DNN"].tolist() == [66.67, 100.0, 50.0]


def test_per_class_table_names_its_columns_by_the_models_labels_unless_told(tmp_path):
    record = prediction_record(LABELS, PREDICTED, CONFIDENCE, epoch=7, n_classes=3)
    table = per_class_table({"custom_resnet": {"predictions": record}}, ["a", "b", "c"])
    assert list(table.columns) == ["Custom ResNet"]


def test_per_class_files_go_to_a_notebooks_results_dir_and_an_empty_table_writes_none(tmp_path, monkeypatch):
    from cifar_helpers.core import paths

    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path)  # stands for the repository
    record = prediction_record(LABELS, PREDICTED, CONFIDENCE, epoch=7, n_classes=3)
    table = per_class_table({"dnn": {"predictions": record}}, ["a", "b", "c"])
    written = write_per_class(table, None)
    assert [p.name for p in written] == ["per_class.csv", "per_class.md", "per_class.tex"]
    assert {p.parent for p in written} == {tmp_path / "results"}
    assert write_per_class(table, "elsewhere")[0].parent == tmp_path / "elsewhere"
    no_run = per_class_table({"cnn": {"history": []}}, ["a", "b", "c"])  # no run with predictions yet
    assert write_per_class(no_run, "empty") == [] and not (tmp_path / "empty").exists()


def test_tied_best_and_worst_classes_are_all_marked():
    table = pd.DataFrame({"CNN": [80.0, 90.0, 90.0, 70.0], "DNN": [50.0, 50.0, 60.0, 55.0]},
                         index=pd.Index(["cat", "dog", "ship", "frog"], name="class"))
    shown = marked_per_class(table)
    assert shown["CNN"].tolist() == ["80.00", "90.00 ▲", "90.00 ▲", "70.00 ▼"]
    assert shown["DNN"].tolist() == ["50.00 ▼", "50.00 ▼", "60.00 ▲", "55.00"]
