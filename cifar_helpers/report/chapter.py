"""What the training notebooks show about a run, in tables and words.

Sentences come back as IPython `Markdown`, so a notebook shows them as wrapped
prose (a `print`ed sentence breaks mid-word); `.data` holds the text. Text that
comes from elsewhere (data descriptions, paths, results files) goes through
`markdown_text`, so that it shows as it reads. Tables come back as `WholeTable`,
a DataFrame shown without pandas' cut at 50 characters.
"""

from __future__ import annotations

import html
import re
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from cifar_helpers.report.predictions import per_class_accuracy
from cifar_helpers.engine.record import best_points
from cifar_helpers.report.results import (REPORT_DATA, REPORT_DEVICE, REPORT_TABLE1, data_label, device_label,
                                          epochs_label, formatted_table1, history_frame, missing_models, model_label,
                                          summary_paragraph)


_MARKDOWN_SYNTAX = re.compile(r"([\\`*_\[\]#|~])")


def markdown_text(text: str) -> str:
    """`text` as Markdown that shows it as it reads: Markdown's and HTML's syntax escaped (`<class>` is
    no unknown HTML tag to drop, `*` no emphasis), and a line break allowed after each path separator,
    so that a long path wraps at a folder instead of mid-word."""
    escaped = html.escape(_MARKDOWN_SYNTAX.sub(r"\\\1", str(text)), quote=False)
    return re.sub(r"(?<=/)(?=[\w.&\\-])", "<wbr>", escaped)


class WholeTable(pd.DataFrame):
    """A DataFrame a notebook shows whole: pandas cuts a cell's text at 50 characters and leaves out
    columns ("..."), in the HTML a notebook shows and in its text alike (wide text wraps into blocks)."""

    @property
    def _constructor(self):
        return WholeTable

    def _repr_html_(self):
        with pd.option_context("display.max_colwidth", None, "display.max_columns", None):
            return super()._repr_html_()

    def __repr__(self):
        with pd.option_context("display.max_colwidth", None, "display.max_columns", None):
            return super().__repr__()


def metrics_table(result: Mapping[str, Any]) -> pd.DataFrame:
    """Per-epoch losses (4 decimals), accuracies (%, 2 decimals) and learning rate, without timings.

    The cells are text, so every row shows the same number of decimals. These
    numbers are seeded and exact on the CPU, so nbval can check them."""
    frame = history_frame(result)
    table = pd.DataFrame({
        "train loss": frame["train_loss"].map("{:.4f}".format),
        "train acc (%)": frame["train_acc_pct"].map("{:.2f}".format),
        "test loss": frame["test_loss"].map("{:.4f}".format),
        "test acc (%)": frame["test_acc_pct"].map("{:.2f}".format),
        "lr": frame["lr"].map("{:g}".format),
    })
    table.index = pd.Index(frame["epoch"], name="epoch")
    return table


def best_epoch_sentence(result: Mapping[str, Any]) -> Markdown:
    """One sentence: where the run peaked, in the report's terms."""
    best = best_points(result)
    label = model_label(result["model"], result)
    sentence = (f"{label}: the lowest test loss, {best.test_loss:.4f}, came at epoch {best.loss_epoch} "
                f"(test accuracy {100 * best.acc_at_loss_epoch:.2f}%)")
    if best.acc_epoch == best.loss_epoch:
        sentence += ", which is also the epoch of the highest accuracy."
    else:
        sentence += (f"; the highest test accuracy, {100 * best.test_acc:.2f}%, came at epoch "
                     f"{best.acc_epoch} (test loss {best.loss_at_acc_epoch:.4f}).")
    if result.get("stopped_early"):
        sentence += f" Early stopping ended the run after epoch {result['stop_epoch']}."
    sentence += f" Epochs run: {epochs_label(result)}."
    return Markdown(sentence)


def report_comparison(result: Mapping[str, Any]) -> Markdown:
    """A short written comparison with the report, every number from `result` or the report's table; for a
    model the report did not train, the same without the report's half."""
    report = REPORT_TABLE1.get(result["model"])
    best = best_points(result)
    history = result["history"]
    last = history[-1]
    lines = [f"**Best test accuracy:** {100 * best.test_acc:.2f}% at epoch {best.acc_epoch} here",
             f"**Lowest test loss:** {best.test_loss:.4f} at epoch {best.loss_epoch} here"]
    if report is None:
        lines = [line + "; the report did not train this model." for line in lines]
    else:
        gap = round(100 * best.test_acc, 2) - report.acc_pct
        lines[0] += f"; the report: {report.acc_pct:.2f}% at epoch {report.epoch} ({gap:+.2f} points)."
        lines[1] += f"; the report: {report.test_loss:.4f}."
    after = len(history) - best.loss_epoch
    if after == 0:
        trend = "The lowest test loss came in the last epoch run, so nothing can be said yet of what follows it."
    else:
        rise = last["test_loss"] - best.test_loss
        trend = (f"In the {after} epoch{'s' if after > 1 else ''} after it, the test loss ended at "
                 f"{last['test_loss']:.4f} ({rise:+.4f}, {100 * rise / best.test_loss:+.0f}%) while the train "
                 f"accuracy reached {100 * last['train_acc']:.2f}%")
        worst = max(row["test_loss"] for row in history[best.loss_epoch:])
        trend += f"; its highest value after the best epoch was {worst:.4f}."
    means = ten_epoch_means([row["test_loss"] for row in history])
    if len(means) >= 2:  # one epoch's jump or a trend: the means tell them apart
        trend += (f" The test loss's mean over each ten epochs, epochs 1-10 to {10 * len(means)}: "
                  f"{', '.join(f'{m:.2f}' if np.isfinite(m) else 'diverged' for m in means)}.")
    lines.append(f"**After the best epoch:** {trend}" + (f" The report: {report.note}." if report else ""))
    partial = (f" This run is partial: it stopped after {len(history)} of the {result.get('epochs_planned')} "
               "epochs planned." if result.get("complete") is False else "")
    jpeg = JPEG_NOTE if data_label(result).startswith("JPEG") else ""
    lines.append(f"**Data and device:** {markdown_text(data_label(result))} on {markdown_text(device_label(result))}; "
                 f"the report trained on {REPORT_DATA} on {REPORT_DEVICE}.{partial}{jpeg}")
    return Markdown("\n\n".join(lines))


def ten_epoch_means(values: Sequence[float]) -> list[float]:
    """The mean of each whole ten epochs (1-10, 11-20, ...); nan where one of them was not finite."""
    blocks = [values[i:i + 10] for i in range(0, len(values) - len(values) % 10, 10)]
    return [float(np.mean(block)) if np.all(np.isfinite(block)) else float("nan") for block in blocks]


JPEG_NOTE = " The JPEG copy costs up to 1-2 points of accuracy against the official files."


def data_summary(data) -> Markdown:
    """One line on the data a notebook trains on: where they come from, how many, their normalisation."""
    mean, std = data.normalization
    return Markdown(
        f"**Data:** {markdown_text(data.source)}: {len(data.train_labels):,} training and "
        f"{len(data.test_labels):,} test images, "
        f"normalised with the training images' per-channel mean ({', '.join(f'{m:.4f}' for m in mean)}) and "
        f"standard deviation ({', '.join(f'{v:.4f}' for v in std)}).")


def per_class_accuracy_table(result: Mapping[str, Any], classes: Sequence[str]) -> WholeTable | Markdown:
    """Per true class: test accuracy (%) of the best weights, and the class it is most often taken for."""
    predictions = result.get("predictions")
    if not predictions:
        return Markdown("*This results file has no test predictions (it was written before they were "
                        "recorded); rerun the notebook to get them.*")
    confusion = np.asarray(predictions["confusion"])
    accuracy = 100 * per_class_accuracy(confusion)
    off_diagonal = confusion - np.diag(np.diag(confusion))
    confused = [f"{classes[j]} ({off_diagonal[i, j]})" if off_diagonal[i, j] else "—"
                for i, j in enumerate(off_diagonal.argmax(1))]
    return WholeTable({"test acc (%)": [f"{a:.2f}" for a in accuracy], "most often taken for (count)": confused},
                      index=pd.Index(list(classes), name=f"true class (epoch {predictions['epoch']})"))


def protocol_table(config, label: str | None = None) -> WholeTable:
    """The training protocol a run will use, as a small two-column table (not the config's repr); `label`
    names a model of your own."""
    optimizer = (f"SGD, lr {config.lr:g}, momentum {config.momentum:g}"
                 + (" (Nesterov)" if config.nesterov else "") if config.optimizer == "sgd"
                 else f"{'AdamW' if config.optimizer == 'adamw' else 'Adam'}, lr {config.lr:g}")
    schedule = {"none": "constant learning rate",
                "step": f"StepLR: × {config.gamma:g} every {config.step_size} epochs",
                "onecycle": f"one-cycle, {100 * config.warmup_fraction:g}% warm-up, per batch"}[config.scheduler]
    subset = (f"{config.subset[0]:,} train / {config.subset[1]:,} test images" if config.subset
              else "all training and test images")  # no count: DATA_DIR may hold other data than CIFAR-10's
    rows = {
        "model": label or model_label(config.model),
        "epochs": (f"at most {config.epochs}, early stopping after {config.patience} epochs without a lower "
                   "test loss" if config.patience else str(config.epochs)),
        "batch size": str(config.batch_size),
        "optimizer": f"{optimizer}, weight decay {config.weight_decay:g}"
                     + (" (decoupled)" if config.optimizer == "adamw" else ""),
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
    if config.flush_denormals:
        rows["denormals"] = "set to zero after every step, in weights and optimizer state (FLUSH_DENORMALS)"
    # An unnamed index: a named one adds a second header row that holds only its name.
    return WholeTable({"setting": list(rows.values())}, index=pd.Index(list(rows)))


def normalization_table(mean, std) -> pd.DataFrame:
    """Per-channel mean and std (pixel values in [0, 1]) used for normalisation."""
    return pd.DataFrame({"mean": mean, "std": std}, index=pd.Index(["R", "G", "B"], name="channel")).round(4)


def block_comparison_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """`compare_blocks()` for reading: basic → bottleneck in each cell, narrow enough for a notebook."""
    def pair(column: str) -> list[str]:
        return [f"{int(a):,} → {int(b):,}" for a, b in zip(comparison[f"basic_{column}"],
                                                            comparison[f"bottleneck_{column}"])]

    table = pd.DataFrame({
        "feature map": [f"{n}×{n}" for n in comparison["spatial"]],
        "convolutions": pair("convs"),
        "parameters": pair("params"),
        "multiply-adds": pair("macs"),
        "params ratio": [f"{100 * r:.1f}%" for r in comparison["params_ratio"]],
        "MACs ratio": [f"{100 * r:.1f}%" for r in comparison["macs_ratio"]],
    })
    table.index = pd.Index(comparison["width"].tolist(), name="channels")
    return table


def bottleneck_verdict(comparison: pd.DataFrame) -> Markdown:
    """State plainly whether the report's bottleneck claim holds in `compare_blocks()`'s numbers."""
    fewer_params = bool((comparison["bottleneck_params"] < comparison["basic_params"]).all())
    fewer_macs = bool((comparison["bottleneck_macs"] < comparison["basic_macs"]).all())
    more_convs = bool((comparison["bottleneck_convs"] > comparison["basic_convs"]).all())
    verdict = "holds" if fewer_params and fewer_macs and more_convs else "does not hold"
    return Markdown(
        f"**The report's claim {verdict}:** at every stage width the bottleneck block has "
        f"{'one more convolution' if more_convs else 'no more convolutions'} than the basic block, "
        f"yet {_span(comparison['params_ratio'])} of its parameters and {_span(comparison['macs_ratio'])} of its "
        "multiply-adds (same input and output channels, inner width = width / 4).")


def _span(ratios: pd.Series) -> str:
    """'5.9%', or '5.9% to 6.1%' when the rounded ends differ."""
    low, high = f"{100 * ratios.min():.1f}%", f"{100 * ratios.max():.1f}%"
    return low if low == high else f"{low} to {high}"


def results_overview(results) -> Markdown:
    """Which results 06 found (with their epochs), which notebooks still have to run, which files it skipped."""
    lines = []
    for model, result in results.items():
        lines.append(f"- {markdown_text(model_label(model, result))}: {markdown_text(epochs_label(result))} epochs, "
                     f"{markdown_text(data_label(result))}, {markdown_text(device_label(result))}")
    for missing in missing_models(results):
        lines.append(f"- {model_label(missing.model)}: not run yet ({missing.notebook})")
    for name, reason in getattr(results, "skipped", {}).items():
        lines.append(f"- skipped `{name}`: {markdown_text(reason)}")
    return Markdown("**Results found:**\n\n" + "\n".join(lines))


def summary_markdown(results) -> Markdown:
    """`results.summary_paragraph` as wrapped prose."""
    return Markdown(markdown_text(summary_paragraph(results)))


def mistakes_figure(result, data_dir, classes: Sequence[str], count: int = 24):
    """The gallery of a run's most confident mistakes, or None after showing why there is none."""
    from cifar_helpers.report.figures import mistakes_gallery
    from cifar_helpers.report.predictions import test_images_for

    if result is None or not result.get("predictions"):
        why = "it has not run yet" if result is None else "its results file has no test predictions"
        display(Markdown(f"*No gallery: {markdown_text(why)}.*"))
        return None
    images, reason = test_images_for(result, data_dir)
    if images is None:
        display(Markdown(f"*No gallery: {markdown_text(reason)}.*"))
        return None
    shown = result["predictions"]["mistakes"][:count]
    return mistakes_gallery(images, shown, classes,
                            f"{model_label(result['model'], result)}: the {len(shown)} most confident mistakes "
                            f"(epoch {result['predictions']['epoch']})")


TABLE1_RUN_COLUMNS = ("Parameters", "Train time", "Epochs", "Device", "Data")


class Tables(tuple):
    """Several tables that a cell's last line shows one below the other, each as itself (a plain tuple would
    show as one repr)."""

    def _ipython_display_(self):
        display(*self)


def table1_views(table: pd.DataFrame) -> Tables:
    """Table 1 for the notebook, in two narrow tables (the files keep it whole): the numbers beside the
    report's, and how each row ran."""
    shown = WholeTable(formatted_table1(table)).set_index("Model")
    runs = [column for column in shown.columns if column in TABLE1_RUN_COLUMNS]
    return Tables((shown.drop(columns=runs), shown[runs]))


# What may differ between two runs trained alike: the network, and how the evaluation is split.
_NOT_THE_PROTOCOL = ("model", "model_options", "eval_batch_size")


def trained_alike(run: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Did `other` train as `run` did, in everything but the network: the same parameters (protocol, seed,
    epochs, subset) and the same data? Only then is comparing their best values fair."""
    def protocol(result):
        return {k: v for k, v in (result.get("params") or {}).items() if k not in _NOT_THE_PROTOCOL}

    return protocol(run) == protocol(other) and run.get("data_digest") == other.get("data_digest")


def your_model_comparison(result: Mapping[str, Any], results: Mapping[str, Mapping[str, Any]]) -> Markdown:
    """Notebook 07's closing words: where a model of your own peaked, and how it stands against every other
    run in `results` that trained alike (`trained_alike`), by best test accuracy."""
    label = model_label(result["model"], result)
    best = best_points(result)
    lines = [f"**{markdown_text(label)}** ({result['num_parameters']:,} parameters, {epochs_label(result)} epochs): "
             f"best test accuracy {100 * best.test_acc:.2f}% at epoch {best.acc_epoch}, lowest test loss "
             f"{best.test_loss:.4f} at epoch {best.loss_epoch}."]
    alike = [(model, other) for model, other in results.items()
             if model != result["model"] and trained_alike(result, other)]
    if not alike:
        lines.append("No other run here trained alike (the same parameters and data, another network), so no "
                     "comparison of best values would be fair; Table 1 lists them all.")
    else:
        ranked = sorted(alike, key=lambda pair: -best_points(pair[1]).test_acc)
        shown = [f"{markdown_text(model_label(model, other))} "
                 f"{100 * best_points(other).test_acc:.2f}% ({markdown_text(label)} "
                 f"{round(100 * best.test_acc, 2) - round(100 * best_points(other).test_acc, 2):+.2f} points)"
                 for model, other in ranked]
        lines.append(f"Trained alike (the same parameters and data, another network): {', '.join(shown)}.")
    return Markdown(" ".join(lines))
