"""Read the training results and build the report's Table 1 from them.

The training engine writes one JSON file per model, `<results_dir>/<model>.json`
(accuracies as fractions in [0, 1]; `cifar_helpers.engine.record` owns its
format and says which files can be used). This module loads whichever of them
exist, the report's four models and any other, compares them with the numbers
the report printed (where it has some), and writes Table 1 as CSV, Markdown and
a LaTeX tabular. Accuracies are shown as percent.

Every number here is computed from the history of each run: "best" values
are taken from the per-epoch history, not from the summary fields the engine
also stores, so the table and the curves can never disagree.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple

import pandas as pd

from cifar_helpers.core.errors import WorkbookWarning
from cifar_helpers.core.paths import repo_path
from cifar_helpers.engine.record import best_points, is_number, rerun_hint, unlike_run, validate_result
from cifar_helpers.models.specs import MODEL_NAMES, SPECS, ReportRow, in_model_order
from cifar_helpers.report.tables import latex_tabular, markdown_table, write_tables


# The report's Table 1, by model (its numbers are written down in models.specs).
REPORT_TABLE1: dict[str, ReportRow] = {name: spec.report for name, spec in SPECS.items()}

# Where the report trained (docs/protocol.md, "The report in brief").
REPORT_DATA = "the official files"
REPORT_DEVICE = "one RTX A6000"
REPORT_SOFTWARE = "Ubuntu 20.04, CUDA 11.4, Docker image pytorch:2.0.1-cuda11.7-cudnn8-devel"

REPORT_COLUMNS = ("Report Loss", "Report Acc (%)", "Report Epoch", "Δ Loss", "Δ Acc (pts)")
NO_REPORT_NUMBER = "-"  # in a report column, for a model the report did not train
TABLE1_COLUMNS = (
    "Model",
    "Best Test Loss",
    "Best Accuracy (%)",
    "Best Epoch",
    "Best-Acc Epoch",
    "Parameters",
    "Train time (s)",
    "Epochs",
    "Device",
    "Data",
    *REPORT_COLUMNS,
)

SEED_COLUMNS = ("Best Acc over seeds (%)", "Best Loss over seeds")  # added to Table 1 when several seeds ran
TEXT_COLUMNS = ("Model", "Epochs", "Device", "Data", *SEED_COLUMNS)

TABLE1_NOTES = (
    "Best Test Loss is the lowest test loss of any epoch; Best Epoch is that epoch.",
    "Best Accuracy is the highest test accuracy of any epoch; Best-Acc Epoch is that epoch.",
    "The 10,000 test images serve as the validation set, as in the report.",
    "Train time is the sum of the per-epoch training time (train_seconds); evaluation time is not included.",
    "Epochs: epochs trained of those planned; '(partial)' marks a run stopped before its end, whose best values "
    "are the best so far.",
    "Data 'JPEG copy': the lossy JPEG re-encoding of CIFAR-10 (quality 75), which costs up to 1-2 points of "
    "accuracy against the official files.",
    "Report columns: the report's Table 1, epochs from its sections 2.2 and 3.3 (docs/protocol.md); "
    "its CNN text gives 77.14%.",
    "Δ = ours minus the report: a negative Δ Loss and a positive Δ Acc mean ours is better.",
)
NOT_IN_REPORT_NOTE = f"'{NO_REPORT_NUMBER}' in the report columns: a model the report did not train."


class ResultsSkippedWarning(WorkbookWarning):
    """A result file was found but not used."""


class LoadedResults(dict):
    """`{model: result}`, the report's models first (`in_model_order`), plus `skipped`: `{file name: reason}`,
    and `seeds`: `{model: [result of each seed]}` when further seeds ran."""

    def __init__(self, results: Mapping[str, dict] | None = None, skipped: Mapping[str, str] | None = None,
                 seeds: Mapping[str, list[dict]] | None = None):
        super().__init__(results or {})
        self.skipped: dict[str, str] = dict(skipped or {})
        self.seeds: dict[str, list[dict]] = {model: list(runs) for model, runs in (seeds or {}).items()}


class Missing(NamedTuple):
    model: str
    notebook: str


# ----------------------------------------------------------------------------- models


def model_label(model: str, result: Mapping[str, Any] | None = None) -> str:
    """How tables and figures name `model`: a report model's label, else the label its results file
    gives (`label`), else its name."""
    if model in SPECS:
        return SPECS[model].label
    label = (result or {}).get("label")
    return label if isinstance(label, str) and label.strip() else model


def model_labels(results: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """`{model: model_label(...)}` for every model in `results`."""
    return {model: model_label(model, result) for model, result in results.items()}


def further_models(results: Mapping[str, Any]) -> list[str]:
    """The models in `results` that are not the report's (a student's own), sorted."""
    return [model for model in in_model_order(results) if model not in SPECS]


# ----------------------------------------------------------------------------- loading


def load_results(results_dir: str | os.PathLike | None = None, *, warn: bool = True) -> LoadedResults:
    """Load `<results_dir>/<model>.json` for the report's models and any other model's results file (one
    whose `model` field is its name); never raises on a partial set.

    `results_dir` is a notebook's RESULTS_DIR: relative to the repository, None for <repo>/results.

    Runs of further seeds (`make run SEEDS=...`) sit in `<results_dir>/seed-<n>/`: they are
    loaded into `.seeds[model]`, all of a model's runs in seed order, the main one among them.
    A run that differs from the main one in more than its seed (`unlike_run`) is left out there and
    named in `.skipped`, so that no mean mixes runs that do not belong together.
    Unreadable, incomplete or invalid files, and JSON files that are not named
    after a model, are skipped; their reasons are in `.skipped` and, unless
    `warn=False`, in one ResultsSkippedWarning.
    """
    results_dir = repo_path(results_dir, "results")
    if not results_dir.is_dir():
        if warn:
            warnings.warn(f"results folder {results_dir} does not exist: no model has been trained yet", ResultsSkippedWarning, stacklevel=2)
        return LoadedResults()
    loaded, skipped = _load_folder(results_dir, "")
    names = {model: f"{model}.json" for model in loaded}
    seeds: dict[str, list[dict]] = {model: [result] for model, result in loaded.items()}
    for folder in sorted(p for p in results_dir.glob("seed-*") if p.is_dir()):
        extra, extra_skipped = _load_folder(folder, f"{folder.name}/")
        skipped.update(extra_skipped)
        for model, result in extra.items():
            name = f"{folder.name}/{model}.json"
            if model not in loaded:  # only further seeds ran: the first stands for the model
                loaded[model], names[model] = result, name
            elif (reason := unlike_run(result, loaded[model])) is not None:
                skipped[name] = f"left out of the mean over seeds: {reason} than {names[model]}"
                continue
            seeds.setdefault(model, []).append(result)
    if skipped and warn:
        lines = "\n".join(f"  {name}: {reason}" for name, reason in skipped.items())
        warnings.warn(f"skipped {len(skipped)} file(s) in {results_dir}:\n{lines}", ResultsSkippedWarning, stacklevel=2)
    ordered = {model: loaded[model] for model in in_model_order(loaded)}
    by_seed = {model: sorted(runs, key=lambda r: (r.get("params") or {}).get("seed", 0)) for model, runs in seeds.items()}
    return LoadedResults(ordered, skipped, by_seed)


def _load_folder(folder: Path, prefix: str) -> tuple[dict[str, dict], dict[str, str]]:
    loaded: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for path in sorted(folder.glob("*.json")):
        model, name = path.stem, prefix + path.name
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            skipped[name] = f"unreadable ({type(error).__name__}: {error}); {rerun_hint(model)}"
            continue
        if model not in SPECS and not (isinstance(result, dict) and result.get("model") == model):
            skipped[name] = (f"not a model result (neither one of the report's models, {', '.join(MODEL_NAMES)}, "
                             f"nor a results file whose 'model' field is {model!r})")
            continue
        reason = validate_result(result, model)
        if reason is not None:
            skipped[name] = reason
            continue
        loaded[model] = result
    return loaded, skipped


def runs_of(results: Mapping[str, dict], model: str) -> list[dict]:
    """Every run of `model` (one per seed), or just the one in `results`."""
    runs = getattr(results, "seeds", {}).get(model)
    return list(runs) if runs else ([results[model]] if model in results else [])


def mean_over_seeds(runs: list[Mapping[str, Any]]) -> tuple[dict, pd.DataFrame]:
    """A result whose history is the per-epoch mean over `runs` (their common epochs), and the
    per-epoch standard deviations (sample std; 0 for one run)."""
    length = min(len(run["history"]) for run in runs)
    frames = [history_frame(run).iloc[:length] for run in runs]
    stacked = pd.concat(frames, keys=range(len(frames)))
    columns = ["train_loss", "train_acc", "test_loss", "test_acc", "lr", "train_seconds"]
    mean = stacked.groupby("epoch")[columns].mean()
    std = stacked.groupby("epoch")[columns].std(ddof=1).fillna(0.0)
    history = [{"epoch": int(epoch), **{k: float(v) for k, v in row.items()}}
               for epoch, row in mean.iterrows()]
    return {**runs[0], "history": history, "stop_epoch": length}, std


def missing_models(results: Mapping[str, dict]) -> list[Missing]:
    """The models without a usable result, each with the notebook that produces it."""
    return [Missing(model, spec.notebook_path) for model, spec in SPECS.items() if model not in results]


# ----------------------------------------------------------------------------- one run


def history_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """One row per epoch; adds `train_acc_pct` and `test_acc_pct` (percent)."""
    frame = pd.DataFrame(list(result["history"]))
    frame["epoch"] = frame["epoch"].astype(int)
    for split in ("train", "test"):
        frame[f"{split}_acc_pct"] = frame[f"{split}_acc"] * 100.0
    return frame


def lr_steps(result: Mapping[str, Any]) -> list[int]:
    """The epochs whose learning rate differs from the epoch before."""
    rates = [row["lr"] for row in result["history"]]
    return [index + 1 for index in range(1, len(rates)) if not math.isclose(rates[index], rates[index - 1], rel_tol=1e-9)]


def epochs_label(result: Mapping[str, Any]) -> str:
    """'100', '77 of 300 (early stop)' or '25 of 100 (partial)'."""
    run = len(result["history"])
    planned = result.get("epochs_planned", (result.get("params") or {}).get("epochs"))
    if not is_number(planned) or run == planned:
        return str(run)
    if result.get("complete") is not True:
        return f"{run} of {planned} (partial)"
    return f"{run} of {planned} (early stop)" if result.get("stopped_early") else f"{run} of {planned}"


def data_label(result: Mapping[str, Any]) -> str:
    """A short name for the data a run read: 'JPEG copy', 'official', 'non-official batches', 'generated',
    'other'."""
    source = str(result.get("data_source") or "")
    if "JPEG" in source and "lossy" in source:
        label = "JPEG copy"
    # data.GENERATED_SOURCE (make smoke's), or a subset of it: "100 train / 50 test subset (seed 23) of generated ..."
    elif source.startswith("generated data") or " of generated data" in source:
        label = "generated"
    elif "python batches" in source:
        label = "non-official batches" if "differ from the official" in source else "official"
    else:
        label = "other" if source else "unrecorded"
    subset = (result.get("params") or {}).get("subset")
    if not subset:
        return label
    n_train, n_test = (subset, subset) if is_number(subset) else subset
    return f"{label}, subset {n_train}/{n_test}"


def device_label(result: Mapping[str, Any]) -> str:
    name = str(result.get("device_name") or result.get("device") or "unrecorded")
    fp32_math = result.get("cuda_fp32_math") or {}
    if fp32_math.get("convolutions") == "tf32" and not result.get("params", {}).get("amp"):
        name += " (TF32 convolutions)"  # PyTorch's default on CUDA: "fp32" convolutions round to TF32
    return name


def train_seconds(result: Mapping[str, Any]) -> float:
    return float(sum(row["train_seconds"] for row in result["history"]))


# ----------------------------------------------------------------------------- Table 1


def _round(value: float, digits: int) -> float:
    rounded = round(value, digits)
    return 0.0 if rounded == 0 else rounded  # no "-0.00"


def table1(results: Mapping[str, dict]) -> pd.DataFrame:
    """Table 1 for the models with results, the report's four first (`in_model_order`), beside the
    report's numbers; a model the report did not train has none (NA) in those columns.

    Losses are rounded to 4 decimals and accuracies (percent) to 2, the
    report's precision; the Δ columns are differences of those rounded values,
    so they agree with what the table shows. Notes are in `df.attrs["notes"]`.
    """
    rows = []
    models = in_model_order(results)
    for model in models:
        result = results[model]
        best = best_points(result)
        loss = _round(best.test_loss, 4)
        acc = _round(best.test_acc * 100.0, 2)
        parameters = result.get("num_parameters")
        report = REPORT_TABLE1.get(model)
        rows.append(
            {
                "Model": model_label(model, result),
                "Best Test Loss": loss,
                "Best Accuracy (%)": acc,
                "Best Epoch": best.loss_epoch,
                "Best-Acc Epoch": best.acc_epoch,
                "Parameters": parameters if is_number(parameters) else pd.NA,
                "Train time (s)": train_seconds(result),
                "Epochs": epochs_label(result),
                "Device": device_label(result),
                "Data": data_label(result),
                **(_report_columns(report, loss, acc) if report else dict.fromkeys(REPORT_COLUMNS, math.nan)),
            }
        )
    frame = pd.DataFrame(rows, columns=list(TABLE1_COLUMNS))
    for column in ("Parameters", "Report Epoch"):
        frame[column] = frame[column].astype("Int64")
    frame.attrs["notes"] = list(TABLE1_NOTES)
    if any(model not in REPORT_TABLE1 for model in models):
        frame.attrs["notes"].append(NOT_IN_REPORT_NOTE)
    runs = {model: runs_of(results, model) for model in models}
    if any(len(r) > 1 for r in runs.values()):  # several seeds: mean ± std beside the single-run numbers
        position = list(frame.columns).index("Best-Acc Epoch") + 1
        for offset, (column, values) in enumerate(_seed_columns(runs).items()):
            frame.insert(position + offset, column, values)
        frame.attrs["notes"].append(SEEDS_NOTE)
    return frame


def _report_columns(report: ReportRow, loss: float, acc: float) -> dict[str, float]:
    return {"Report Loss": report.test_loss, "Report Acc (%)": report.acc_pct, "Report Epoch": report.epoch,
            "Δ Loss": _round(loss - report.test_loss, 4), "Δ Acc (pts)": _round(acc - report.acc_pct, 2)}


SEEDS_NOTE = ("Over seeds: the mean ± sample standard deviation of each seed's best value, over n seeds "
              "(make run SEEDS=...); the other columns are the main seed's run.")


def _seed_columns(runs: Mapping[str, list[dict]]) -> dict[str, list[str]]:
    accs, losses = [], []
    for model_runs in runs.values():
        best = [best_points(run) for run in model_runs]
        acc = pd.Series([100 * b.test_acc for b in best])
        loss = pd.Series([b.test_loss for b in best])
        n = len(best)
        accs.append(f"{acc.mean():.2f} ± {acc.std(ddof=1) if n > 1 else 0:.2f} (n={n})")
        losses.append(f"{loss.mean():.4f} ± {loss.std(ddof=1) if n > 1 else 0:.4f} (n={n})")
    return dict(zip(SEED_COLUMNS, (accs, losses)))


def format_duration(seconds: float) -> str:
    """42 s, 12 min 05 s, 3 h 07 min, 2 days 05 h."""
    if not is_number(seconds) or not math.isfinite(seconds):
        return "n/a"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 48:
        return f"{hours // 24} days {hours % 24:02d} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _format_cell(column: str, value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return NO_REPORT_NUMBER if column in REPORT_COLUMNS else "n/a"
    if column in TEXT_COLUMNS:
        return str(value)
    if column == "Parameters":
        return f"{int(value):,}"
    if column == "Train time (s)":
        return format_duration(float(value))
    if column in ("Best Epoch", "Best-Acc Epoch", "Report Epoch"):
        return str(int(value))
    if column in ("Best Test Loss", "Report Loss"):
        return f"{value:.4f}"
    if column == "Δ Loss":
        return f"{value:+.4f}"
    if column == "Δ Acc (pts)":
        return f"{value:+.2f}"
    return f"{value:.2f}"  # accuracies in percent


def _display_header(column: str) -> str:
    return "Train time" if column == "Train time (s)" else column


def formatted_table1(df: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as strings, the way the Markdown and LaTeX files show it."""
    shown = pd.DataFrame({_display_header(c): [_format_cell(c, v) for v in df[c]] for c in df.columns})
    shown.attrs["notes"] = list(df.attrs.get("notes", TABLE1_NOTES))
    return shown


def table1_markdown(df: pd.DataFrame) -> str:
    shown = formatted_table1(df)
    return markdown_table(shown, "Table 1. Best test loss and accuracy per model.", shown.attrs["notes"],
                          TEXT_COLUMNS)


def table1_latex(df: pd.DataFrame) -> str:
    """A `tabular` fragment that needs no LaTeX package: `\\input{table1.tex}` inside a table.

    Fifteen columns are wide: in a narrow layout wrap it in `\\resizebox` (graphicx)."""
    shown = formatted_table1(df)
    return latex_tabular(shown, "Table 1", "cifar_helpers.report.results.write_table1", shown.attrs["notes"], TEXT_COLUMNS)


def write_table1(df: pd.DataFrame, results_dir: str | os.PathLike | None = None) -> list[Path]:
    """Write `table1.csv` (raw numbers), `table1.md` and `table1.tex` atomically into `results_dir` (a notebook's
    RESULTS_DIR: relative to the repository, None for <repo>/results)."""
    return write_tables(repo_path(results_dir, "results"), "table1", df, table1_markdown(df), table1_latex(df))


# ----------------------------------------------------------------------------- prose


def _join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def summary_paragraph(results: Mapping[str, dict]) -> str:
    """A short paragraph on the ranking by best accuracy and the gaps, built from the results.

    Every number it states comes from `table1(results)` (or is a difference of
    two of its values); the report's numbers are attributed to the report.
    """
    missing = missing_models(results)
    missing_text = ""
    if missing:
        missing_text = "Not run yet: " + _join(f"{model_label(m.model)} ({m.notebook})" for m in missing) + "."
    table = table1(results)
    if table.empty:
        return "No model has results yet. " + missing_text

    models = in_model_order(results)  # table1's rows, in order
    rows = [dict(row, model=model) for model, row in zip(models, table.to_dict("records"))]
    ranked = sorted(rows, key=lambda row: -row["Best Accuracy (%)"])  # stable: ties keep in_model_order
    sentences = []
    if len(ranked) == 1:
        row = ranked[0]
        sentences.append(
            f"Only {row['Model']} has results: best test accuracy {row['Best Accuracy (%)']:.2f}% "
            f"(epoch {row['Best-Acc Epoch']}) and lowest test loss {row['Best Test Loss']:.4f} (epoch {row['Best Epoch']})."
        )
    else:
        sentences.append(
            "Ranked by best test accuracy: "
            + _join(f"{row['Model']} {row['Best Accuracy (%)']:.2f}% (epoch {row['Best-Acc Epoch']})" for row in ranked)
            + "."
        )
        gaps = [
            f"{upper['Model']} leads {lower['Model']} by {_round(upper['Best Accuracy (%)'] - lower['Best Accuracy (%)'], 2):.2f} points"
            for upper, lower in zip(ranked, ranked[1:])
        ]
        sentences.append(_join(gaps) + ".")
        lowest_loss = min(ranked, key=lambda row: row["Best Test Loss"])
        sentences.append(f"The lowest test loss is {lowest_loss['Model']}'s {lowest_loss['Best Test Loss']:.4f} (epoch {lowest_loss['Best Epoch']}).")

    in_report = [row for row in rows if row["model"] in REPORT_TABLE1]
    comparisons = [f"{row['Model']} {row['Δ Acc (pts)']:+.2f}" for row in in_report]
    if comparisons:
        sentences.append(
            "Against the report, best accuracy differs by " + _join(comparisons) + " points (ours minus the report's)."
        )
    others = [row["Model"] for row in rows if row["model"] not in REPORT_TABLE1]
    if others:
        sentences.append(f"The report has no numbers for {_join(others)}.")
    ours = [row for row in ranked if row["model"] in REPORT_TABLE1]
    if len(ours) > 1:
        report_order = sorted(ours, key=lambda row: -REPORT_TABLE1[row["model"]].acc_pct)
        if [row["model"] for row in report_order] == [row["model"] for row in ours]:
            sentences.append("The report's models rank as in the report." if others else "The ranking is the report's.")
        else:
            sentences.append(("The report ranks its models " if others else "The report ranks them ")
                             + _join(row["Model"] for row in report_order) + ".")
    subsets = [row["Model"] for row in rows if (results[row["model"]].get("params") or {}).get("subset")]
    if subsets:
        sentences.append(f"{_join(subsets)} trained on a subset of the data (a smoke run), so those numbers are not comparable with the report.")
    sources = sorted({results[m].get("data_source") or "an unrecorded source" for m in models})
    if len(sources) == 1:
        sentences.append(f"Data: {sources[0]}.")
    elif sources:
        sentences.append("The runs read different data: " + _join(sources) + ".")
    if missing_text:
        sentences.append(missing_text)
    return " ".join(sentences)
