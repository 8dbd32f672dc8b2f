"""What the notebooks show: tables with even decimals, sentences as Markdown, the comparison with the report."""

from __future__ import annotations

import html.parser
import math
from types import SimpleNamespace

import mistune
import numpy as np
import torch
from test_plots import fake_predictions, with_further_models
from test_results import SPECS, all_results, make_result

from cifar_helpers.report.chapter import (
    block_comparison_table,
    bottleneck_verdict,
    best_epoch_sentence,
    data_summary,
    metrics_table,
    per_class_accuracy_table,
    protocol_table,
    report_comparison,
    results_overview,
    summary_markdown,
    table1_views,
    ten_epoch_means,
)
from cifar_helpers.engine.config import TrainConfig
from cifar_helpers.models import compare_blocks
from cifar_helpers.report.results import LoadedResults, table1


def test_metrics_table_shows_every_row_with_the_same_decimals():
    table = metrics_table(make_result("dnn", **SPECS["dnn"]))
    assert list(table.columns) == ["train loss", "train acc (%)", "test loss", "test acc (%)", "lr"]
    assert table.index.name == "epoch" and len(table) == 30
    assert all(len(value.split(".")[1]) == 2 for value in table["train acc (%)"].tolist() + table["test acc (%)"].tolist())
    assert all(len(value.split(".")[1]) == 4 for value in table["test loss"])
    assert table.loc[19, "test acc (%)"] == "53.12"


def test_sentences_are_markdown_that_wraps():
    sentence = best_epoch_sentence(make_result("dnn", **SPECS["dnn"]))
    assert sentence.data.startswith("DNN: the lowest test loss, 1.3000, came at epoch 17 (test accuracy")
    assert sentence.data.endswith(" Epochs run: 30.")
    assert "highest test accuracy, 53.12%, came at epoch 19" in sentence._repr_markdown_()


def test_report_comparison_takes_every_number_from_the_run_or_the_report():
    result = make_result("resnet", **SPECS["resnet"]) | {"complete": False, "epochs_planned": 100,
                                                       "data_source": "JPEG image folder (lossy copy) at /x",
                                                       "device_name": "CPU (1 thread)"}
    text = report_comparison(result).data
    assert "**Best test accuracy:** 81.23% at epoch 11 here; the report: 80.85% at epoch 11 (+0.38 points)." in text
    assert "**Lowest test loss:** 0.6000 at epoch 11 here; the report: 0.5801." in text
    last = result["history"][-1]["test_loss"]
    assert f"In the 14 epochs after it, the test loss ended at {last:.4f} (+{last - 0.6:.4f}" in text
    assert "test loss rose after epoch 11 (overfitting)" in text
    means = ten_epoch_means([row["test_loss"] for row in result["history"]])
    assert f"mean over each ten epochs, epochs 1-10 to 20: {means[0]:.2f}, {means[1]:.2f}." in text
    assert "JPEG copy on CPU (1 thread)" in text
    assert "This run is partial: it stopped after 25 of the 100 epochs planned." in text
    assert "costs up to 1-2 points" in text


def test_ten_epoch_means_cover_whole_tens_and_mark_a_diverged_one():
    assert ten_epoch_means([1.0] * 10 + [3.0] * 10 + [9.0] * 5) == [1.0, 3.0]
    assert ten_epoch_means([1.0] * 9) == []
    means = ten_epoch_means([1.0] * 10 + [float("inf")] + [2.0] * 9)
    assert means[0] == 1.0 and math.isnan(means[1])


def test_per_class_table_names_each_classs_accuracy_and_its_usual_mistake():
    labels, predicted, record = fake_predictions(n_classes=3, per_class=4)
    table = per_class_accuracy_table({"predictions": record}, ["a", "b", "c"])
    assert list(table.index) == ["a", "b", "c"] and table.index.name == "true class (epoch 7)"
    for row, name in enumerate("abc"):
        hits = ((labels == row) & (predicted == row)).sum()
        assert table.loc[name, "test acc (%)"] == f"{100 * hits / 4:.2f}"
    older = per_class_accuracy_table({}, ["a", "b", "c"])
    assert "no test predictions" in older.data


def test_results_overview_lists_found_missing_and_skipped():
    results = LoadedResults(all_results(["dnn", "custom_resnet"]), {"cnn.json": "unreadable"})
    text = results_overview(results).data
    assert "- DNN: 30 epochs" in text and "- ResNet: not run yet (notebooks/03_resnet.ipynb)" in text
    assert "- skipped `cnn.json`: unreadable" in text


def test_block_comparison_reads_basic_to_bottleneck_and_the_verdict_has_no_empty_range():
    comparison = compare_blocks()
    table = block_comparison_table(comparison)
    assert list(table.columns) == ["feature map", "convolutions", "parameters", "multiply-adds", "params ratio",
                                   "MACs ratio"]
    assert table.loc[64, "convolutions"] == "2 → 3" and table.loc[64, "feature map"] == "16×16"
    assert table.loc[64, "parameters"] == f"{comparison.loc[0, 'basic_params']:,} → {comparison.loc[0, 'bottleneck_params']:,}"
    verdict = bottleneck_verdict(comparison).data
    assert verdict.startswith("**The report's claim holds:**")
    assert "5.9% to 6.1% of its parameters and 5.9% of its multiply-adds" in verdict
    assert not np.isnan(comparison["macs_ratio"]).any()


class _Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.text, self.tags = "", []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text += data


def rendered(markdown: str) -> _Text:
    """The text and tags a reader sees of `markdown` (rendered by mistune, as nbconvert does; JupyterLab's
    marked follows the same CommonMark rules for these)."""
    page = _Text()
    page.feed(mistune.html(markdown))
    return page


IMAGE_FOLDER = ("JPEG image folder (lossy copy) at /home/a_student/some/deeply/nested/course_work/"
                "data/cifar10-jpeg (train/<class>/, test/<class>/)")


def fake_loaded_data(source: str):
    return SimpleNamespace(source=source, normalization=((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
                           train_labels=torch.zeros(400), test_labels=torch.zeros(200))


def test_data_summary_shows_the_source_as_it_reads_and_breaks_paths_at_folders():
    markdown = data_summary(fake_loaded_data(IMAGE_FOLDER)).data
    page = rendered(markdown)
    assert f"Data: {IMAGE_FOLDER}: 400 training and 200 test images" in page.text  # <class> and _ kept
    assert "em" not in page.tags
    # A line may break after each folder of the path (<wbr>), and nowhere inside a name.
    assert "/<wbr>nested/<wbr>course\\_work/<wbr>data/<wbr>cifar10-jpeg (" in markdown
    assert page.tags.count("wbr") >= IMAGE_FOLDER.split(" (train")[0].count("/")
    # About the data alone: notebook 01 calls it too, so it points to no notebook.
    assert page.text.strip().endswith("standard deviation (0.2500, 0.2500, 0.2500).")


def test_summary_paragraph_shows_the_data_source_as_it_reads():
    results = {model: result | {"data_source": IMAGE_FOLDER} for model, result in all_results().items()}
    assert f"Data: {IMAGE_FOLDER}." in rendered(summary_markdown(results).data).text


def test_report_comparison_and_overview_escape_what_results_files_say():
    result = make_result("dnn", **SPECS["dnn"]) | {"device_name": "CPU <2 threads> *fast*"}
    assert "on CPU <2 threads> *fast*;" in rendered(report_comparison(result).data).text
    overview = LoadedResults(all_results(["dnn"]), {"cnn.json": "not JSON: <html> at line 1"})
    assert "not JSON: <html> at line 1" in rendered(results_overview(overview).data).text


def test_the_protocol_table_has_one_header_row():
    """A named index adds a header row holding only its name, above the rows: the table reads as two."""
    page = protocol_table(TrainConfig.for_model("dnn"))._repr_html_()
    header = page.split("<thead>")[1].split("</thead>")[0]
    assert header.count("<tr") == 1 and "setting" in header


def test_tables_show_every_character_of_long_settings():
    """pandas cuts text cells at 50 characters ("...") unless told otherwise."""
    config = TrainConfig.for_model("custom_resnet")
    table = protocol_table(config)
    epochs = table.loc["epochs", "setting"]
    assert len(epochs) > 50 and epochs.startswith("at most 300, early stopping after 15 epochs")
    assert epochs in table._repr_html_() and epochs in repr(table)
    device = "CPU (2 threads), epochs 1-16; CPU (1 thread), epochs 17-30"
    results = {"dnn": make_result("dnn", **SPECS["dnn"]) | {"device_name": device}}
    scores, runs = table1_views(table1(results))
    assert device in runs._repr_html_() and device in repr(runs) and "..." not in repr(runs)
    assert "..." not in repr(table.tail(3)) and "..." not in repr(scores)


def test_a_model_the_report_did_not_train_reads_without_the_reports_half():
    from cifar_helpers.report.predictions import per_class_table

    results = LoadedResults(with_further_models("wide_cnn"))
    result = results["wide_cnn"]
    assert best_epoch_sentence(result).data.startswith("Wide Cnn: the lowest test loss, 0.9000, came at epoch 5")
    text = report_comparison(result).data
    assert "**Best test accuracy:** 60.00% at epoch 5 here; the report did not train this model." in text
    assert "**Lowest test loss:** 0.9000 at epoch 5 here; the report did not train this model." in text
    assert "The report:" not in text and "**Data and device:**" in text
    assert "- Wide Cnn: 12 epochs" in results_overview(results).data
    numbers, runs = table1_views(table1(results))
    assert numbers.loc["Wide Cnn", "Report Acc (%)"] == "-" and runs.loc["Wide Cnn", "Epochs"] == "12"
    assert list(per_class_table(results, [f"c{i}" for i in range(10)]).columns) == ["Wide Cnn"]


def test_table1s_two_views_show_as_two_tables_from_a_cells_last_line(monkeypatch):
    from cifar_helpers.report import chapter

    views = table1_views(table1({"dnn": make_result("dnn", **SPECS["dnn"])}))
    shown = []
    monkeypatch.setattr(chapter, "display", lambda *objects: shown.extend(objects))
    views._ipython_display_()  # what IPython calls for a cell's last value that has it
    assert len(shown) == 2 and shown[0] is views[0] and shown[1] is views[1]
