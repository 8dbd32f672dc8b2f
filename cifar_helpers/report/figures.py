"""The workbook's figures: training curves, the report's Fig 1 and Fig 4, sample images.

Every function returns a matplotlib Figure and leaves pyplot's list of open
figures as it found it: notebooks display the returned Figure, and
`figstyle.save_figure` writes it. Colours come from the Okabe-Ito palette,
and train and test curves also differ in line style, so the figures read in
grey scale and for colour-blind readers.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from cifar_helpers.models.specs import LECTURE_MODELS, SPECS, in_model_order
from cifar_helpers.engine.record import best_points
from cifar_helpers.report.results import (epochs_label, further_models, history_frame, lr_steps, mean_over_seeds,
                                          model_label, runs_of)
from cifar_helpers.report.style import OKABE_ITO, PAGE_WIDTH, STYLE, model_style, shade

EPOCH_LABEL = "epoch"
LOSS_LABEL = "cross-entropy loss"
ACC_LABEL = "accuracy (%)"
TEST_ACC_LABEL = "test accuracy (%)"

TRAIN_STYLE = dict(color=OKABE_ITO["blue"], linestyle="-", linewidth=1.6)
TEST_STYLE = dict(color=OKABE_ITO["vermillion"], linestyle="--", linewidth=1.6)
BEST_COLOUR = OKABE_ITO["black"]
STOP_COLOUR = OKABE_ITO["reddish_purple"]
LR_COLOUR = OKABE_ITO["grey"]  # a reference line, not data

# A diverged run's loss can reach 1e10: cap the loss axis at this many times
# the first epoch's loss so that the rest of the curve stays readable.
LOSS_CAP_FACTOR = 2.0
BAND_ALPHA = 0.2  # the ± 1 std band over seeds


@contextlib.contextmanager
def _styled_figure(**kwargs: Any) -> Iterator[Figure]:
    """A constrained-layout Figure, built under the workbook style, not kept by pyplot."""
    with mpl.rc_context(STYLE):
        fig = plt.figure(layout="constrained", **kwargs)
        plt.close(fig)  # pyplot forgets it; the Figure still draws, displays and saves
        yield fig


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return np.where(np.isfinite(array), array, np.nan)


def model_styles(models: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Each model's (colour, line style) from the one palette (`style.model_style`): a report model's by its
    place in SPECS, so that it keeps it whichever others ran; further models the next ones, sorted by name."""
    further = [model for model in in_model_order(models) if model not in SPECS]
    return {model: model_style(list(SPECS).index(model) if model in SPECS else len(SPECS) + further.index(model))
            for model in models}


def _panel_letter(index: int) -> str:
    """A, B, ..., Z, AA, AB, ...: a panel's letter, however many panels."""
    letter = chr(ord("A") + index % 26)
    return letter if index < 26 else _panel_letter(index // 26 - 1) + letter


def _not_run_yet(ax: Axes, model: str) -> None:
    ax.text(0.5, 0.5, f"not run yet:\n{SPECS[model].notebook_path}", transform=ax.transAxes, ha="center", va="center", color="0.35")
    ax.set_xticks([])
    ax.set_yticks([])


def _drop_line(ax: Axes, x: float, y: float) -> None:
    """A dotted line from the point down to the x axis: shows the epoch without crossing legends.

    Call it after the curves are drawn: it fixes the y limits they set."""
    bottom, top = ax.get_ylim()
    ax.plot([x, x], [bottom, y], color=BEST_COLOUR, linestyle=":", linewidth=0.9)
    ax.set_ylim(bottom, top)


def _loss_panel(ax: Axes, result: Mapping[str, Any], spread=None) -> None:
    """Train and test loss, the lowest test loss marked, the axis capped if the loss diverged.

    With `spread` (per-epoch standard deviations over seeds, `result` being their mean) each
    curve gets a band of ± 1 std."""
    frame = history_frame(result)
    epochs = frame["epoch"].to_numpy()
    train, test = _finite(frame["train_loss"]), _finite(frame["test_loss"])
    ax.plot(epochs, train, label="train", **TRAIN_STYLE)
    ax.plot(epochs, test, label="test", **TEST_STYLE)
    if spread is not None:
        for values, key, style in ((train, "train_loss", TRAIN_STYLE), (test, "test_loss", TEST_STYLE)):
            width = spread[key].to_numpy()
            ax.fill_between(epochs, values - width, values + width, color=style["color"], alpha=BAND_ALPHA,
                            linewidth=0)
    best = best_points(result)
    _drop_line(ax, best.loss_epoch, best.test_loss)
    ax.plot([best.loss_epoch], [best.test_loss], marker="o", markersize=4.5, linestyle="none", color=BEST_COLOUR,
            label=f"lowest test loss: {best.test_loss:.4f} (epoch {best.loss_epoch})")

    not_finite = ~(np.isfinite(frame["train_loss"]) & np.isfinite(frame["test_loss"]))
    if not_finite.any():
        first = int(epochs[not_finite.to_numpy().argmax()])
        ax.axvline(first, color=STOP_COLOUR, linestyle="-", linewidth=0.9, label=f"loss not finite from epoch {first}")
    first_losses = [value for value in (train[0], test[0]) if np.isfinite(value)]
    cap = LOSS_CAP_FACTOR * max(first_losses) if first_losses else math.inf
    if np.nanmax(np.concatenate([train, test])) > cap:
        ax.set_ylim(0, cap)
        ax.plot([], [], linestyle="none", label=f"loss above {cap:.2f} not shown")
    else:
        ax.set_ylim(bottom=0)
    _epoch_axis(ax, epochs[-1])
    ax.set_ylabel(LOSS_LABEL)


def _epoch_axis(ax: Axes, last_epoch: int) -> None:
    """Whole-number epochs from 1 to the last one, and no further."""
    ax.set_xlim(0.5, last_epoch + 0.5)
    ax.set_xlabel(EPOCH_LABEL)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))


def _accuracy_panel(ax: Axes, result: Mapping[str, Any]) -> None:
    frame = history_frame(result)
    epochs = frame["epoch"].to_numpy()
    ax.plot(epochs, _finite(frame["train_acc_pct"]), label="train", **TRAIN_STYLE)
    ax.plot(epochs, _finite(frame["test_acc_pct"]), label="test", **TEST_STYLE)
    best = best_points(result)
    _drop_line(ax, best.acc_epoch, best.test_acc * 100)
    ax.plot([best.acc_epoch], [best.test_acc * 100], marker="o", markersize=4.5, linestyle="none", color=BEST_COLOUR,
            label=f"highest test accuracy: {best.test_acc * 100:.2f}% (epoch {best.acc_epoch})")
    _epoch_axis(ax, epochs[-1])
    ax.set_ylabel(ACC_LABEL)


def plot_history(result: Mapping[str, Any]) -> Figure:
    """Loss and accuracy curves of one run, side by side, best epochs marked."""
    model = result["model"]
    with _styled_figure(figsize=(PAGE_WIDTH, 3.1)) as fig:
        loss_ax, acc_ax = fig.subplots(1, 2)
        _loss_panel(loss_ax, result)
        _accuracy_panel(acc_ax, result)
        best = best_points(result)
        loss_ax.set_title(f"loss: lowest test loss {best.test_loss:.4f} (epoch {best.loss_epoch})", fontsize="small")
        acc_ax.set_title(f"accuracy: highest test accuracy {100 * best.test_acc:.2f}% (epoch {best.acc_epoch})",
                         fontsize="small")
        # one legend below both panels, where it covers no curve; a diverged run's notes stay in its panel
        extra = [(h, label) for h, label in zip(*loss_ax.get_legend_handles_labels()) if label.startswith("loss ")]
        if extra:
            loss_ax.legend(*zip(*extra), loc="upper right", framealpha=0.9)
        handles = _shared_handles()
        handles[-1].set_label("best epoch (lowest test loss, highest test accuracy)")
        fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
        parameters = result.get("num_parameters")
        detail = f", {parameters:,} parameters" if isinstance(parameters, int) else ""
        fig.suptitle(f"{model_label(model, result)}: {epochs_label(result)} epochs{detail}")
    return fig


def _partial_note(result: Mapping[str, Any] | None) -> str:
    """', partial: 25 of 100 epochs' for a run stopped before its end, else ''."""
    if result is None or result.get("complete") is not False:
        return ""
    return f", partial: {epochs_label(result).removesuffix(' (partial)')} epochs"


FIG1_COLUMNS = 3


def fig1_loss_curves(results: Mapping[str, Mapping[str, Any]]) -> Figure:
    """The report's Fig 1: train and test loss of (A) DNN, (B) CNN and (C) ResNet, then of every further
    model in `results` (not the report's: D, E, ...), three panels a row.

    The narrow panels share one legend below them, so no legend covers a curve;
    each panel's title gives its lowest test loss."""
    models, seeds = [*LECTURE_MODELS, *further_models(results)], 1
    rows = math.ceil(len(models) / FIG1_COLUMNS)
    with _styled_figure(figsize=(PAGE_WIDTH, 2.8 * rows)) as fig:
        axes = np.atleast_1d(fig.subplots(rows, FIG1_COLUMNS)).ravel()
        for unused in axes[len(models):]:
            unused.remove()
        for index, (model, ax) in enumerate(zip(models, axes)):
            title = f"({_panel_letter(index)}) {model_label(model, results.get(model))}" + _partial_note(results.get(model))
            if model in results:
                shown, spread, n = _over_seeds(results, model)
                _loss_panel(ax, shown, spread)
                best = best_points(shown)
                title += (f"\nlowest test loss {best.test_loss:.4f} (epoch {best.loss_epoch})" if n == 1 else
                          f", mean of {n} seeds\nlowest mean test loss {best.test_loss:.4f} (epoch {best.loss_epoch})")
                seeds = max(seeds, n)
            else:
                _not_run_yet(ax, model)
                _epoch_axis(ax, 1)
                ax.set_xticks([])
            ax.set_title(title, fontsize="small")
            ax.set_ylabel(LOSS_LABEL if index % FIG1_COLUMNS == 0 else "")
        fig.legend(handles=_shared_handles(seeds), loc="outside lower center", ncols=4, frameon=False)
        fig.suptitle("Fig 1. Loss curves per model")
    return fig


def _shared_handles(seeds: int = 1) -> list:
    handles = [Line2D([], [], label="train", **TRAIN_STYLE), Line2D([], [], label="test", **TEST_STYLE),
               Line2D([], [], marker="o", markersize=4.5, linestyle="none", color=BEST_COLOUR, label="lowest test loss")]
    if seeds > 1:
        handles.append(Patch(color="0.5", alpha=BAND_ALPHA, label="± 1 std over the seeds"))
    return handles


def _over_seeds(results: Mapping[str, Any], model: str):
    """(the run, or the mean over its seeds; the per-epoch std or None; the number of seeds)."""
    runs = runs_of(results, model)
    if len(runs) < 2:
        return results[model], None, 1
    mean, spread = mean_over_seeds(runs)
    return mean, spread, len(runs)


def fig4_custom_resnet_loss(result: Mapping[str, Any] | None, seeds: Mapping[str, Any] | None = None) -> Figure:
    """The report's Fig 4: Custom ResNet train and test loss with the best epoch,
    the early-stopping point (or the final epoch) and the learning-rate steps.

    `seeds`: the loaded results, to draw the mean over the Custom ResNet's seeds with a band."""
    with _styled_figure(figsize=(PAGE_WIDTH, 3.4)) as fig:
        ax = fig.subplots()
        ax.set_title("Fig 4. Custom ResNet loss curve")
        if result is None:
            _not_run_yet(ax, "custom_resnet")
            ax.set_xlabel(EPOCH_LABEL)
            ax.set_ylabel(LOSS_LABEL)
            return fig
        shown, spread, n = _over_seeds(seeds if seeds is not None else {"custom_resnet": result}, "custom_resnet")
        _loss_panel(ax, shown, spread)
        stop_epoch = int(result.get("stop_epoch") or len(result["history"]))
        if result.get("stopped_early"):
            stop_label = f"early stop (epoch {stop_epoch})"
        elif result.get("complete") is False:  # a partial run may still stop early later
            stop_label = f"stopped after epoch {epochs_label(result)}"
        else:
            stop_label = f"final epoch {stop_epoch} (no early stop)"
        if n > 1:  # the mean covers the epochs every seed ran
            ax.set_title(f"Fig 4. Custom ResNet loss curve, mean of {n} seeds (band: ± 1 std)")
            stop_epoch = len(shown["history"])
            stop_label = f"the shortest of the {n} runs ends (epoch {stop_epoch})"
        ax.axvline(stop_epoch, color=STOP_COLOUR, linestyle="-.", linewidth=1.2, label=stop_label)
        _mark_lr_steps(ax, result)
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=3, frameon=False)
    return fig


def _mark_lr_steps(ax: Axes, result: Mapping[str, Any]) -> None:
    """Vertical lines at the first epoch of each new learning rate, each labelled with that rate.

    The label sits left of its line, inside the axes, so a line at the last epoch (where the
    early-stop line may also fall) keeps its label readable."""
    rates = [row["lr"] for row in result["history"]]
    steps = lr_steps(result)
    on_top = blended_transform_factory(ax.transData, ax.transAxes)
    for index, epoch in enumerate(steps):
        ax.axvline(epoch, color=LR_COLOUR, linestyle=(0, (1, 2)), linewidth=1.0,
                   label=f"learning-rate step (from {rates[0]:g})" if index == 0 else None)
        ax.annotate(f"lr {rates[epoch - 1]:g}", xy=(epoch, 0.97), xycoords=on_top, xytext=(-2, 0),
                    textcoords="offset points", rotation=90, ha="right", va="top", fontsize="small",
                    color=shade(LR_COLOUR, 0.6))


def accuracy_curves(results: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Test accuracy (%) of every model with results, on one plot, highest accuracy marked.

    The legend sits below the axes, where it can cover no curve."""
    with _styled_figure(figsize=(PAGE_WIDTH, 3.6)) as fig:
        ax = fig.subplots()
        present = in_model_order(results)
        styles = model_styles(present)
        for model in present:
            frame = history_frame(results[model])
            best = best_points(results[model])
            colour, linestyle = styles[model]
            ax.plot(frame["epoch"], _finite(frame["test_acc_pct"]), color=colour, linestyle=linestyle, linewidth=1.4,
                    label=f"{model_label(model, results[model])} (best {best.test_acc * 100:.2f}%, epoch {best.acc_epoch})")
            ax.plot([best.acc_epoch], [best.test_acc * 100], marker="o", markersize=4.5, linestyle="none",
                    color=colour, markeredgecolor=BEST_COLOUR)
        absent = [spec.label for model, spec in SPECS.items() if model not in results]
        title = "Test accuracy per model"
        if absent:
            title += f" (not run yet: {', '.join(absent)})"
        ax.set_title(title)
        last = max((len(results[m]["history"]) for m in present), default=1)
        _epoch_axis(ax, last)
        ax.set_ylabel(TEST_ACC_LABEL)
        if present:
            fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, frameon=False)
        else:
            ax.text(0.5, 0.5, "no results yet", transform=ax.transAxes, ha="center", va="center", color="0.35")
    return fig


def sample_mosaic(images: np.ndarray, labels: np.ndarray, num_classes: int, per_class: int, seed: int, pad: int = 2) -> np.ndarray:
    """`per_class` random images of each class, one class per row, on a white background."""
    count, height, width, channels = images.shape
    rng = np.random.default_rng(seed)
    mosaic = np.full((num_classes * (height + pad) + pad, per_class * (width + pad) + pad, channels), 255, dtype=np.uint8)
    for row in range(num_classes):
        members = np.flatnonzero(labels == row)
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False)
        for column, index in enumerate(chosen):
            top, left = pad + row * (height + pad), pad + column * (width + pad)
            mosaic[top : top + height, left : left + width] = images[index]
    return mosaic


def sample_grid(images_uint8_nhwc: Any, labels: Any, classes: Sequence[str], per_class: int = 8, seed: int = 23) -> Figure:
    """A grid of sample images: one row per class, named on the left."""
    images = np.asarray(images_uint8_nhwc)
    labels = np.asarray(labels).reshape(-1)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        hint = " (this looks like NCHW: use images.permute(0, 2, 3, 1))" if images.ndim == 4 and images.shape[1] in (1, 3) else ""
        raise ValueError(f"sample_grid expects images shaped (N, H, W, 3 or 1), got {images.shape}{hint}")
    if images.dtype != np.uint8:
        raise ValueError(f"sample_grid expects uint8 images (0-255), got {images.dtype}")
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    mosaic = sample_mosaic(images, labels, len(classes), per_class, seed)
    height = images.shape[1]
    with _styled_figure(figsize=(0.7 * per_class + 1.4, 0.7 * len(classes) + 0.6)) as fig:
        ax = fig.subplots()
        ax.imshow(mosaic.squeeze(-1) if mosaic.shape[-1] == 1 else mosaic, cmap="gray", interpolation="nearest")
        ax.set_yticks([2 + row * (height + 2) + height / 2 for row in range(len(classes))], list(classes))
        ax.set_xticks([])
        ax.tick_params(length=0)
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(f"{per_class} random images per class (seed {seed})")
    return fig


def _confusion_panel(ax: Axes, confusion: np.ndarray, classes: Sequence[str], show_y: bool = True,
                     show_x: bool = True):
    """One confusion matrix: colour = share of the true class (row), text = the count."""
    counts = np.asarray(confusion, dtype=np.int64)
    totals = counts.sum(1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape, float), where=totals > 0)
    image = ax.imshow(100 * shares, cmap="Blues", vmin=0, vmax=100)
    small = len(classes) > 5
    for (row, column), count in np.ndenumerate(counts):
        ax.text(column, row, str(count), ha="center", va="center", fontsize=5.5 if small else 7,
                color="white" if shares[row, column] > 0.55 else "black")
    ticks = range(len(classes))
    ax.set_xticks(ticks, list(classes) if show_x else [], rotation=90)
    ax.set_yticks(ticks, list(classes) if show_y else [])
    if show_x:
        ax.set_xlabel("predicted class")
    if show_y:
        ax.set_ylabel("true class")
    ax.tick_params(length=0)
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return image


def confusion_matrix_figure(result: Mapping[str, Any], classes: Sequence[str]) -> Figure:
    """The test-set confusion matrix of a run's best weights: rows true, columns predicted,
    coloured by the share of each true class, each cell showing its count."""
    predictions = result.get("predictions")
    with _styled_figure(figsize=(0.62 * PAGE_WIDTH, 0.55 * PAGE_WIDTH)) as fig:
        ax = fig.subplots()
        if not predictions:
            ax.text(0.5, 0.5, "no predictions in this results file\n(made before they were recorded: rerun it)",
                    transform=ax.transAxes, ha="center", va="center", color="0.35")
            ax.set_axis_off()
            return fig
        image = _confusion_panel(ax, np.asarray(predictions["confusion"]), classes)
        fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class (%)")
        correct = np.trace(np.asarray(predictions["confusion"])) / np.sum(predictions["confusion"])
        # Over the figure, not the axes: a long model name would run into the colour bar.
        fig.suptitle(f"{model_label(result['model'], result)}, epoch {predictions['epoch']}: {100 * correct:.2f}% correct")
    return fig


def confusion_matrices(results: Mapping[str, Mapping[str, Any]], classes: Sequence[str]) -> Figure:
    """The report's four models' confusion matrices, then any further model's, two a row (2×2 for the
    four), with one colour scale."""
    models = [*SPECS, *further_models(results)]
    rows = math.ceil(len(models) / 2)
    with _styled_figure(figsize=(PAGE_WIDTH, rows * PAGE_WIDTH / 2 + 0.3)) as fig:
        axes = fig.subplots(rows, 2).ravel()
        for unused in axes[len(models):]:
            unused.remove()
        axes = axes[:len(models)]
        image = None
        for index, (model, ax) in enumerate(zip(models, axes)):
            label = model_label(model, results.get(model))
            predictions = (results.get(model) or {}).get("predictions")
            if not predictions:
                reason = "not run yet" if model not in results else "no predictions recorded"
                ax.text(0.5, 0.5, f"{label}:\n{reason}", transform=ax.transAxes, ha="center",
                        va="center", color="0.35")
                ax.set_axis_off()
                continue
            image = _confusion_panel(ax, np.asarray(predictions["confusion"]), classes, show_y=index % 2 == 0,
                                     show_x=index >= len(models) - 2)
            ax.set_title(f"{label} (epoch {predictions['epoch']})")
        if image is not None:
            fig.colorbar(image, ax=axes.tolist(), shrink=0.45, label="share of the true class (%)")
        fig.suptitle("Test-set confusion matrices at each model's best epoch (rows: true class)")
    return fig


def mistakes_gallery(images_uint8_nhwc: Any, mistakes: Sequence[Sequence], classes: Sequence[str],
                     title: str, columns: int = 6, rows: int = 4) -> Figure:
    """The first `rows × columns` of `mistakes` ([index, true, predicted, confidence], most confident
    first), each test image with its true class and the wrong prediction under it."""
    images = np.asarray(images_uint8_nhwc)
    shown = list(mistakes)[: rows * columns]
    rows = max(1, math.ceil(len(shown) / columns))
    with _styled_figure(figsize=(PAGE_WIDTH, rows * 1.5 + 0.35)) as fig:
        axes = np.atleast_1d(fig.subplots(rows, columns, gridspec_kw={"hspace": 0.1})).ravel()
        for ax in axes:
            ax.set_axis_off()
        for ax, (index, true, predicted, confidence) in zip(axes, shown):
            ax.imshow(images[int(index)], interpolation="nearest")
            # under the image: the true class, then the prediction and its confidence
            ax.text(0.5, -0.04, f"{classes[true]}\n→ {classes[predicted]} ({100 * confidence:.0f}%)",
                    transform=ax.transAxes, ha="center", va="top", fontsize=7)
        fig.suptitle(title)
    return fig
