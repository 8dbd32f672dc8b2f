"""Figures from fabricated results: axes, labels, legends, markers and the LR-step lines."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from test_results import SPECS, all_results, make_result

from cifar_helpers.report.style import PAGE_WIDTH, model_style, save_and_show, save_figure
from cifar_helpers.report.figures import (
    LR_COLOUR,
    STOP_COLOUR,
    accuracy_curves,
    confusion_matrices,
    fig1_loss_curves,
    fig4_custom_resnet_loss,
    model_styles,
    plot_history,
    sample_grid,
)


@pytest.fixture(autouse=True)
def no_pyplot_leak():
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before, "a plot function left a figure open in pyplot"


def legend_texts(ax_or_fig) -> list[str]:
    """The entries of an axes' legend, or of a figure's (first) legend."""
    legend = ax_or_fig.legends[0] if isinstance(ax_or_fig, Figure) else ax_or_fig.get_legend()
    return [text.get_text() for text in legend.get_texts()] if legend else []


def labelled_line(ax, prefix: str) -> Line2D:
    (line,) = [line for line in ax.get_lines() if line.get_label().startswith(prefix)]
    return line


def vertical_lines(ax, colour) -> list[float]:
    """x of the axvline()s drawn in `colour`."""
    found = []
    for line in ax.get_lines():
        x = line.get_xdata()
        if len(x) == 2 and x[0] == x[1] and matplotlib.colors.same_color(line.get_color(), colour):
            found.append(float(x[0]))
    return found


def assert_nothing_clipped(fig: Figure) -> None:
    """Draw the figure; everything drawn (labels, legends, titles) must lie inside it."""
    canvas = FigureCanvasAgg(fig)  # a figure closed in pyplot keeps only a base canvas
    canvas.draw()
    drawn, page = fig.get_tightbbox(canvas.get_renderer()), fig.bbox_inches
    tolerance = 0.01  # inches
    assert drawn.x0 >= page.x0 - tolerance and drawn.y0 >= page.y0 - tolerance, (drawn, page)
    assert drawn.x1 <= page.x1 + tolerance and drawn.y1 <= page.y1 + tolerance, (drawn, page)


def assert_legends_outside_the_axes(fig: Figure) -> None:
    """Every figure legend lies below every axes, so it covers no curve."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            assert box.y1 <= ax.get_window_extent(renderer).y0 + 1, "a legend overlaps the plotting area"


@pytest.mark.parametrize("make", [
    lambda: fig1_loss_curves(all_results()),
    lambda: fig4_custom_resnet_loss(make_result("custom_resnet", **SPECS["custom_resnet"])),
    lambda: accuracy_curves(all_results()),
    lambda: plot_history(make_result("dnn", **SPECS["dnn"])),
])
def test_figures_are_drawn_at_the_printed_column_width(make):
    """16 cm wide at print size, and at the notebook's dpi no wider than JupyterLab's output area."""
    fig = make()
    width, height = fig.get_size_inches()
    assert width == pytest.approx(PAGE_WIDTH) and height < width
    assert width * fig.dpi <= 960
    assert min(text.get_fontsize() for text in fig.findobj(matplotlib.text.Text) if text.get_text()) >= 6


def test_plot_history_shows_loss_and_accuracy_with_best_epochs():
    result = make_result("dnn", **SPECS["dnn"])
    fig = plot_history(result)
    assert isinstance(fig, Figure)
    loss_ax, acc_ax = fig.axes
    assert (loss_ax.get_xlabel(), loss_ax.get_ylabel()) == ("epoch", "cross-entropy loss")
    assert (acc_ax.get_xlabel(), acc_ax.get_ylabel()) == ("epoch", "accuracy (%)")
    assert loss_ax.get_title() == "loss: lowest test loss 1.3000 (epoch 17)"
    assert acc_ax.get_title() == "accuracy: highest test accuracy 53.12% (epoch 19)"
    assert legend_texts(fig) == ["train", "test", "best epoch (lowest test loss, highest test accuracy)"]
    assert loss_ax.get_legend() is None and acc_ax.get_legend() is None
    assert_legends_outside_the_axes(fig)
    marker = labelled_line(loss_ax, "lowest test loss")
    assert list(marker.get_xdata()) == [17] and marker.get_ydata()[0] == pytest.approx(1.3)
    marker = labelled_line(acc_ax, "highest test accuracy")
    assert list(marker.get_xdata()) == [19] and marker.get_ydata()[0] == pytest.approx(53.12)
    assert list(labelled_line(acc_ax, "test").get_ydata()[:2]) == pytest.approx([100 * (0.5312 - 0.005 * 18), 100 * (0.5312 - 0.005 * 17)])
    assert "1,738,890 parameters" in fig.get_suptitle()
    assert_nothing_clipped(fig)


def test_fig1_has_three_panels_with_the_lowest_test_loss_marked():
    fig = fig1_loss_curves(all_results())
    assert len(fig.axes) == 3
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["(A) DNN", "(B) CNN", "(C) ResNet"]
    assert fig.axes[0].get_title().split("\n")[1] == "lowest test loss 1.3000 (epoch 17)"
    assert legend_texts(fig) == ["train", "test", "lowest test loss"]  # one legend, below the panels
    assert_legends_outside_the_axes(fig)
    assert [ax.get_ylabel() for ax in fig.axes] == ["cross-entropy loss", "", ""]
    for model, ax in zip(("dnn", "cnn", "resnet"), fig.axes):
        spec = SPECS[model]
        assert ax.get_xlabel() == "epoch" and ax.get_legend() is None
        marker = labelled_line(ax, "lowest test loss")
        assert list(marker.get_xdata()) == [spec["best_loss_epoch"]] and marker.get_ydata()[0] == pytest.approx(spec["best_loss"])
        assert len(labelled_line(ax, "train").get_xdata()) == spec["epochs"]
    assert_nothing_clipped(fig)


@pytest.mark.parametrize("present", [(), ("cnn",), ("dnn", "resnet")])
def test_fig1_marks_missing_models_instead_of_failing(present):
    fig = fig1_loss_curves(all_results(present))
    assert len(fig.axes) == 3
    for model, ax in zip(("dnn", "cnn", "resnet"), fig.axes):
        texts = [text.get_text() for text in ax.texts]
        if model in present:
            assert texts == [] and ax.get_lines()
        else:
            assert any(text.startswith("not run yet") and f"notebooks/0" in text and model in text for text in texts)
            assert not ax.get_lines()
    assert_nothing_clipped(fig)


def test_fig4_marks_best_epoch_early_stop_and_lr_steps():
    result = make_result("custom_resnet", **SPECS["custom_resnet"])
    fig = fig4_custom_resnet_loss(result)
    (ax,) = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", "cross-entropy loss")
    assert vertical_lines(ax, LR_COLOUR) == [31, 61]
    assert vertical_lines(ax, STOP_COLOUR) == [77]
    marker = labelled_line(ax, "lowest test loss")
    assert list(marker.get_xdata()) == [62] and marker.get_ydata()[0] == pytest.approx(0.3)
    assert legend_texts(fig) == [
        "train",
        "test",
        "lowest test loss: 0.3000 (epoch 62)",
        "early stop (epoch 77)",
        "learning-rate step (from 0.001)",
    ]
    assert [text.get_text().strip() for text in ax.texts] == ["lr 0.0001", "lr 1e-05"]
    assert_nothing_clipped(fig)


def test_fig4_without_early_stop_labels_the_final_epoch_and_handles_no_result():
    result = make_result("custom_resnet", epochs=20, best_loss_epoch=20, lr=0.001)
    fig = fig4_custom_resnet_loss(result)
    (ax,) = fig.axes
    assert vertical_lines(ax, STOP_COLOUR) == [20] and vertical_lines(ax, LR_COLOUR) == []
    assert "final epoch 20 (no early stop)" in legend_texts(fig)
    partial = result | {"complete": False, "epochs_planned": 300}
    assert "stopped after epoch 20 of 300 (partial)" in legend_texts(fig4_custom_resnet_loss(partial))
    (ax,) = fig4_custom_resnet_loss(None).axes
    assert "notebooks/05_custom_resnet.ipynb" in ax.texts[0].get_text()


def test_a_diverged_loss_is_capped_and_said_so():
    result = make_result("dnn", **SPECS["dnn"])
    for row in result["history"][20:25]:
        row["train_loss"] = 1e9
    for row in result["history"][25:]:
        row["train_loss"] = row["test_loss"] = math.nan
    fig = plot_history(result)
    loss_ax = fig.axes[0]
    first_losses = result["history"][0]["train_loss"], result["history"][0]["test_loss"]
    assert loss_ax.get_ylim() == pytest.approx((0, 2 * max(first_losses)))
    texts = legend_texts(loss_ax)
    assert "loss not finite from epoch 26" in texts and any(text.startswith("loss above") for text in texts)
    assert_nothing_clipped(fig)


def test_accuracy_curves_one_line_per_present_model():
    fig = accuracy_curves(all_results())
    (ax,) = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", "test accuracy (%)")
    assert legend_texts(fig) == [
        "DNN (best 53.12%, epoch 19)",
        "CNN (best 77.89%, epoch 45)",
        "ResNet (best 81.23%, epoch 11)",
        "Custom ResNet (best 91.05%, epoch 62)",
    ]
    line = labelled_line(ax, "Custom ResNet")
    assert len(line.get_xdata()) == 77 and max(line.get_ydata()) == pytest.approx(91.05)
    assert ax.get_xlim() == (0.5, 77.5)  # the axis ends at the last epoch
    assert_legends_outside_the_axes(fig)
    assert_nothing_clipped(fig)


@pytest.mark.parametrize("present", [(), ("resnet",), ("cnn", "custom_resnet")])
def test_accuracy_curves_partial_sets(present):
    fig = accuracy_curves(all_results(present))
    (ax,) = fig.axes
    assert len(legend_texts(fig) if present else []) == len(present)
    assert ("not run yet" in ax.get_title()) == (len(present) < 4)
    assert_nothing_clipped(fig)


def test_sample_grid_lays_out_classes_in_rows():
    rng = np.random.default_rng(0)
    classes = [f"class{i}" for i in range(10)]
    labels = np.repeat(np.arange(10), 6)
    labels = labels[labels != 9][:-1]  # no image of class 9, five of class 8
    images = rng.integers(0, 256, size=(len(labels), 8, 8, 3), dtype=np.uint8)
    fig = sample_grid(images, labels, classes, per_class=6, seed=1)
    (ax,) = fig.axes
    mosaic = ax.images[0].get_array()
    assert mosaic.shape == (10 * (8 + 2) + 2, 6 * (8 + 2) + 2, 3)
    assert [label.get_text() for label in ax.get_yticklabels()] == classes
    assert np.all(mosaic[2 + 9 * 10 :, :, :] == 255), "class 9 has no image: its row stays blank"
    again = sample_grid(images, labels, classes, per_class=6, seed=1).axes[0].images[0].get_array()
    assert np.array_equal(mosaic, again)
    first_tile = mosaic[2:10, 2:10]
    assert any(np.array_equal(first_tile, images[i]) for i in np.flatnonzero(labels == 0))
    assert_nothing_clipped(fig)


def test_sample_grid_rejects_nchw_and_floats():
    with pytest.raises(ValueError, match="NCHW"):
        sample_grid(np.zeros((4, 3, 8, 8), np.uint8), [0, 1, 2, 3], ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="uint8"):
        sample_grid(np.zeros((4, 8, 8, 3), np.float32), [0, 1, 2, 3], ["a", "b", "c", "d"])


def test_figures_save_as_png_and_pdf(tmp_path):
    results = all_results(["dnn", "custom_resnet"])
    paths = save_figure(fig1_loss_curves(results), tmp_path / "fig1") + save_figure(fig4_custom_resnet_loss(results["custom_resnet"]), tmp_path / "fig4")
    assert [p.name for p in paths] == ["fig1.png", "fig1.pdf", "fig4.png", "fig4.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_a_notebook_saves_and_shows_a_figure_in_its_figures_dir_and_none_is_nothing(tmp_path, monkeypatch):
    from cifar_helpers.core import paths

    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path)  # stands for the repository
    fig = fig1_loss_curves(all_results(["dnn"]))
    assert save_and_show(fig, "fig1_loss_curves", None) is fig
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["fig1_loss_curves.pdf", "fig1_loss_curves.png"]
    assert save_and_show(fig, "again", "figures/smoke") is fig and (tmp_path / "figures/smoke/again.png").is_file()
    assert save_and_show(None, "custom_resnet_mistakes", "nothing") is None  # no gallery to show
    assert not (tmp_path / "nothing").exists()


def test_fig4_ends_at_the_last_epoch_and_keeps_an_lr_label_that_meets_the_stop_line():
    result = make_result("custom_resnet", epochs=31, best_loss_epoch=16, lr=0.001, step_size=30, stopped_early=True)
    fig = fig4_custom_resnet_loss(result)
    (ax,) = fig.axes
    assert ax.get_xlim() == (0.5, 31.5)
    assert vertical_lines(ax, LR_COLOUR) == [31] and vertical_lines(ax, STOP_COLOUR) == [31]
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    (label,) = ax.texts
    box, axes_box = label.get_window_extent(canvas.get_renderer()), ax.get_window_extent(canvas.get_renderer())
    assert label.get_text() == "lr 0.0001" and axes_box.x0 <= box.x0 and box.x1 <= axes_box.x1
    assert_legends_outside_the_axes(fig)


def fake_predictions(n_classes=10, per_class=20, epoch=7):
    from cifar_helpers.engine.record import prediction_record

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(n_classes), per_class)
    predicted = np.where(rng.random(len(labels)) < 0.7, labels, rng.integers(0, n_classes, len(labels)))
    return labels, predicted, prediction_record(labels, predicted, rng.random(len(labels)), epoch, n_classes)


def test_confusion_matrix_figure_shows_counts_rows_true_columns_predicted():
    from cifar_helpers.report.figures import confusion_matrix_figure

    classes = [f"c{i}" for i in range(10)]
    labels, predicted, record = fake_predictions()
    fig = confusion_matrix_figure(make_result("cnn", **SPECS["cnn"]) | {"predictions": record}, classes)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    assert [t.get_text() for t in ax.get_yticklabels()] == classes
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): int(t.get_text()) for t in ax.texts}
    assert cells[(3, 3)] == int(((labels == 3) & (predicted == 3)).sum()) and sum(cells.values()) == len(labels)
    correct = 100 * (labels == predicted).mean()
    assert fig.get_suptitle() == f"CNN, epoch 7: {correct:.2f}% correct"
    assert_nothing_clipped(fig)
    long_name = confusion_matrix_figure(make_result("custom_resnet", **SPECS["custom_resnet"]) | {"predictions": record},
                                        classes)
    long_name.draw_without_rendering()
    title = long_name._suptitle or long_name.axes[0].title  # wherever the title is drawn
    assert not title.get_window_extent().overlaps(long_name.axes[1].get_tightbbox())  # it once ran into the bar
    older = confusion_matrix_figure(make_result("cnn", **SPECS["cnn"]), classes)  # a file without predictions
    assert "no predictions" in older.axes[0].texts[0].get_text()


def test_a_confusion_matrix_sits_right_under_its_title():
    """The matrix is square: in a figure taller than it needs, it sat mid-height, half an inch under the title."""
    from cifar_helpers.data.official import CIFAR10_CLASSES
    from cifar_helpers.report.figures import confusion_matrix_figure

    fig = confusion_matrix_figure(make_result("cnn", **SPECS["cnn"]) | {"predictions": fake_predictions()[2]},
                                  CIFAR10_CLASSES)
    fig.draw_without_rendering()
    gap = fig._suptitle.get_window_extent().y0 - fig.axes[0].get_window_extent().y1
    assert 0 <= gap < 0.15 * fig.dpi
    assert_nothing_clipped(fig)


def test_the_four_confusion_matrices_say_what_is_missing():
    from cifar_helpers.report.figures import confusion_matrices

    results = all_results(["dnn", "cnn", "custom_resnet"])
    results["dnn"]["predictions"] = fake_predictions()[2]
    fig = confusion_matrices(results, [f"c{i}" for i in range(10)])
    titles = [ax.get_title() for ax in fig.axes[:4]]
    texts = [" ".join(t.get_text() for t in ax.texts) for ax in fig.axes[:4]]
    assert titles[0] == "DNN (epoch 7)"
    assert "no predictions recorded" in texts[1] and "not run yet" in texts[2]
    assert_nothing_clipped(fig)


def test_mistakes_gallery_puts_true_and_predicted_class_under_each_image():
    from cifar_helpers.report.figures import mistakes_gallery

    images = np.random.default_rng(0).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    mistakes = [[11, 3, 5, 0.99], [42, 0, 9, 0.75]]
    fig = mistakes_gallery(images, mistakes, [f"c{i}" for i in range(10)], "title", columns=4)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 2 and np.array_equal(shown[0].images[0].get_array(), images[11])
    assert shown[0].texts[0].get_text() == "c3\n→ c5 (99%)" and shown[0].texts[0].get_position()[1] < 0
    assert_nothing_clipped(fig)


def test_fig1_draws_the_mean_over_seeds_with_a_band():
    from matplotlib.collections import PolyCollection

    from cifar_helpers.report.results import LoadedResults

    runs = [make_result("dnn", **SPECS["dnn"]), make_result("dnn", **{**SPECS["dnn"], "best_loss": 1.1})]
    results = LoadedResults({"dnn": runs[0]}, {}, {"dnn": runs})
    fig = fig1_loss_curves(results)
    ax = fig.axes[0]
    assert "mean of 2 seeds" in ax.get_title()
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 2  # train and test bands
    test_line = labelled_line(ax, "test")
    expected = [(a["test_loss"] + b["test_loss"]) / 2 for a, b in zip(runs[0]["history"], runs[1]["history"])]
    assert list(test_line.get_ydata()) == pytest.approx(expected)
    assert legend_texts(fig)[-1] == "± 1 std over the seeds"
    assert_nothing_clipped(fig)


# ----------------------------------------------------------------------------- models the report did not train


def with_further_models(*names: str) -> dict:
    """The four fabricated runs, and one more per name (labelled by its results file), predictions and all."""
    results = all_results()
    for index, name in enumerate(names):
        results[name] = make_result(name, epochs=12 + index, best_loss_epoch=5, best_loss=0.9, best_acc=0.6 + index / 100)
        results[name] |= {"label": name.replace("_", " ").title(), "predictions": fake_predictions()[2]}
    return results


def test_the_palette_keeps_the_report_models_styles_and_never_runs_out():
    # the four colours and line styles the committed figures show
    assert [model_style(i) for i in range(4)] == [("#E69F00", ":"), ("#56B4E9", "-."), ("#009E73", "--"), ("#0072B2", "-")]
    pairs = [model_style(i) for i in range(28)]
    assert len(set(pairs)) == 28  # every model of the first 28 has a pair of its own
    assert model_style(28) == model_style(0) and model_style(10_000) in pairs
    # a report model keeps its style whichever others ran; further ones follow, sorted by name
    assert model_styles(["resnet", "zeta", "alpha"]) == {"resnet": model_style(2), "alpha": model_style(4),
                                                         "zeta": model_style(5)}


def test_the_accuracy_figure_draws_a_further_model_in_the_next_style():
    fig = accuracy_curves(with_further_models("wide_cnn"))
    (ax,) = fig.axes
    assert legend_texts(fig)[4] == "Wide Cnn (best 60.00%, epoch 5)" and len(legend_texts(fig)) == 5
    for index, label in enumerate(["DNN", "CNN", "ResNet", "Custom ResNet", "Wide Cnn"]):
        line = labelled_line(ax, label + " (")
        assert (matplotlib.colors.to_hex(line.get_color()).upper(), line.get_linestyle()) == model_style(index)
    assert "not run yet" not in ax.get_title()
    assert_nothing_clipped(fig)


def test_fig1_adds_a_panel_per_further_model_three_a_row():
    results = with_further_models("wide_cnn", "bn_resnet")
    fig = fig1_loss_curves(results)
    titles = [ax.get_title().split("\n")[0] for ax in fig.axes]
    assert titles == ["(A) DNN", "(B) CNN", "(C) ResNet", "(D) Bn Resnet", "(E) Wide Cnn"]
    assert [ax.get_ylabel() for ax in fig.axes] == ["cross-entropy loss", "", "", "cross-entropy loss", ""]
    marker = labelled_line(fig.axes[4], "lowest test loss")
    assert list(marker.get_xdata()) == [5] and marker.get_ydata()[0] == pytest.approx(0.9)
    assert fig.get_size_inches()[0] == pytest.approx(PAGE_WIDTH)
    assert_legends_outside_the_axes(fig)
    assert_nothing_clipped(fig)


def test_the_confusion_matrices_add_further_models_two_a_row():
    results = with_further_models("wide_cnn")
    results["dnn"]["predictions"] = fake_predictions()[2]
    fig = confusion_matrices(results, [f"c{i}" for i in range(10)])
    panels = fig.axes[:5]  # then the colour bar
    assert [ax.get_title() for ax in panels] == ["DNN (epoch 7)", "", "", "", "Wide Cnn (epoch 7)"]
    assert fig.get_size_inches()[1] == pytest.approx(3 * PAGE_WIDTH / 2 + 0.3)
    assert_nothing_clipped(fig)
