"""Read the training results and build the report's Table 1 from them.

The training engine writes one JSON file per model, `<results_dir>/<model>.json`
(accuracies as fractions in [0, 1]). This module loads whichever of them
exist, compares them with the numbers the report printed, and writes Table 1
as CSV, Markdown and a LaTeX tabular. Accuracies are shown as percent.

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
from cifar_helpers.report.tables import latex_tabular, markdown_table, write_tables
from cifar_helpers.models.catalog import MODEL_LABELS, MODEL_NAMES, MODEL_NOTEBOOKS

SCHEMA_VERSION = 1


HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "train_seconds")


@dataclass(frozen=True)
class ReportRow:
    """One row of the report's Table 1, as printed (accuracy in percent)."""

    test_loss: float
    acc_pct: float
    epoch: int
    note: str = ""


# The report's own numbers, the only place they are written down.
# Source: the report's Table 1 ("최종 실험 결과") for loss and accuracy and its
# sections 2.2.1-2.2.3 and 3.3 for the epochs; restated in docs/protocol.md.
REPORT_TABLE1: dict[str, ReportRow] = {
    "dnn": ReportRow(1.3459, 52.64, 17, "loss diverged after epoch 17"),
    # Table 1 says 77.17%, the text of section 2.2.2 says 77.14%; we compare with the table.
    "cnn": ReportRow(0.6787, 77.17, 67, "section 2.2.2 gives 77.14%"),
    "resnet": ReportRow(0.5801, 80.85, 11, "test loss rose after epoch 11 (overfitting)"),
    "custom_resnet": ReportRow(0.3053, 90.47, 62, "lowest loss and highest accuracy in the same epoch"),
}

# Where the report trained (docs/protocol.md, "The report in brief").
REPORT_DATA = "the official files"
REPORT_DEVICE = "one RTX A6000"
REPORT_SOFTWARE = "Ubuntu 20.04, CUDA 11.4, Docker image pytorch:2.0.1-cuda11.7-cudnn8-devel"

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
    "Report Loss",
    "Report Acc (%)",
    "Report Epoch",
    "Δ Loss",
    "Δ Acc (pts)",
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


class ResultsSkippedWarning(WorkbookWarning):
    """A result file was found but not used."""


class LoadedResults(dict):
    """`{model: result}` in MODEL_NAMES, plus `skipped`: `{file name: reason}`, and `seeds`:
    `{model: [result of each seed]}` when further seeds ran."""

    def __init__(self, results: Mapping[str, dict] | None = None, skipped: Mapping[str, str] | None = None,
                 seeds: Mapping[str, list[dict]] | None = None):
        super().__init__(results or {})
        self.skipped: dict[str, str] = dict(skipped or {})
        self.seeds: dict[str, list[dict]] = {model: list(runs) for model, runs in (seeds or {}).items()}


class Missing(NamedTuple):
    model: str
    notebook: str


@dataclass(frozen=True)
class BestPoints:
    """The epochs of lowest test loss and highest test accuracy (1-based)."""

    loss_epoch: int
    test_loss: float
    acc_at_loss_epoch: float
    acc_epoch: int
    test_acc: float
    loss_at_acc_epoch: float


# ----------------------------------------------------------------------------- loading


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_result(result: Any, model: str) -> str | None:
    """Why `result` (the content of `<model>.json`) cannot be used, or None when it can."""
    if not isinstance(result, dict):
        return f"expected a JSON object, got {type(result).__name__}"
    schema = result.get("schema")
    if schema != SCHEMA_VERSION:
        return f"schema is {schema!r}, this reader understands schema {SCHEMA_VERSION}; update cifar_helpers or rerun {MODEL_NOTEBOOKS[model]}"
    if result.get("model") != model:
        return f"file is named for {model!r} but its 'model' field is {result.get('model')!r}"
    complete = result.get("complete")
    if complete is not True and not (complete is False and _is_number(result.get("epochs_planned"))):
        return (f"incomplete: training has not finished ('complete' is {complete!r}, no epochs_planned); "
                f"finish or rerun {MODEL_NOTEBOOKS[model]}")
    history = result.get("history")
    if not isinstance(history, list) or not history:
        return "'history' is missing or empty"
    for index, row in enumerate(history):
        if not isinstance(row, dict):
            return f"history[{index}] is not an object"
        absent = [key for key in HISTORY_KEYS if not _is_number(row.get(key))]
        if absent:
            return f"history[{index}] lacks numeric {', '.join(absent)}"
        if row["epoch"] != index + 1:
            return f"history[{index}] has epoch {row['epoch']!r}, expected {index + 1} (epochs are 1-based and consecutive)"
    stop_epoch = result.get("stop_epoch")
    if stop_epoch is not None and stop_epoch != len(history):
        return f"stop_epoch is {stop_epoch!r} but the history has {len(history)} epochs"
    if not any(math.isfinite(row["test_loss"]) for row in history):
        return "no epoch has a finite test loss"
    if not any(math.isfinite(row["test_acc"]) for row in history):
        return "no epoch has a finite test accuracy"
    for index, row in enumerate(history):
        for key in ("train_acc", "test_acc"):
            if math.isfinite(row[key]) and not 0 <= row[key] <= 1:
                return (f"history[{index}] has {key} {row[key]!r}: accuracies are fractions in [0, 1], "
                        f"not percent; rerun {MODEL_NOTEBOOKS[model]}")
    return None


def load_results(results_dir: str | os.PathLike | None = None, *, warn: bool = True) -> LoadedResults:
    """Load `<results_dir>/<model>.json` for each known model; never raises on a partial set.

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
    ordered = {model: loaded[model] for model in MODEL_NAMES if model in loaded}
    by_seed = {model: sorted(runs, key=lambda r: (r.get("params") or {}).get("seed", 0)) for model, runs in seeds.items()}
    return LoadedResults(ordered, skipped, by_seed)


def _load_folder(folder: Path, prefix: str) -> tuple[dict[str, dict], dict[str, str]]:
    loaded: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for path in sorted(folder.glob("*.json")):
        model, name = path.stem, prefix + path.name
        if model not in MODEL_NAMES:
            skipped[name] = f"not a model result (known models: {', '.join(MODEL_NAMES)})"
            continue
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            skipped[name] = f"unreadable ({type(error).__name__}: {error}); rerun {MODEL_NOTEBOOKS[model]}"
            continue
        reason = validate_result(result, model)
        if reason is not None:
            skipped[name] = reason
            continue
        loaded[model] = result
    return loaded, skipped


# What may differ between the seeds of one mean: the seed, and EVAL_BATCH_SIZE, which only splits the
# evaluation (TrainConfig.fingerprint leaves it out too).
_NOT_THE_RUN = ("seed", "eval_batch_size")


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """'epochs: 2 -> 3; lr: 0.1 -> 0.05': the keys whose values differ, or '' when none does."""
    keys = sorted(set(old) | set(new))
    return "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def unlike_run(run: Mapping[str, Any], main: Mapping[str, Any]) -> str | None:
    """How `run` differs from `main` in anything but its seed ("trained on other data"), or None when
    they are two seeds of one run: the same parameters, data (content digest) and network."""
    def params(result):
        return {k: v for k, v in (result.get("params") or {}).items() if k not in _NOT_THE_RUN}

    if params(run) != params(main):
        return f"trained with other parameters ({changes(params(main), params(run))})"
    if run.get("data_digest") != main.get("data_digest"):
        return f"trained on other data (data digest {run.get('data_digest')}, not {main.get('data_digest')})"
    if run.get("architecture") != main.get("architecture"):
        return f"trained another network ({changes(main.get('architecture') or {}, run.get('architecture') or {})})"
    return None


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
    return [Missing(model, MODEL_NOTEBOOKS[model]) for model in MODEL_NAMES if model not in results]


# ----------------------------------------------------------------------------- one run


def history_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """One row per epoch; adds `train_acc_pct` and `test_acc_pct` (percent)."""
    frame = pd.DataFrame(list(result["history"]))
    frame["epoch"] = frame["epoch"].astype(int)
    for split in ("train", "test"):
        frame[f"{split}_acc_pct"] = frame[f"{split}_acc"] * 100.0
    return frame


def best_points(result: Mapping[str, Any]) -> BestPoints:
    """Lowest test loss and highest test accuracy; non-finite epochs are ignored, ties go to the earliest epoch."""
    frame = history_frame(result)
    finite_loss = frame[frame["test_loss"].map(math.isfinite)]
    finite_acc = frame[frame["test_acc"].map(math.isfinite)]
    loss_row = frame.loc[finite_loss["test_loss"].idxmin()]
    acc_row = frame.loc[finite_acc["test_acc"].idxmax()]
    return BestPoints(
        loss_epoch=int(loss_row["epoch"]),
        test_loss=float(loss_row["test_loss"]),
        acc_at_loss_epoch=float(loss_row["test_acc"]),
        acc_epoch=int(acc_row["epoch"]),
        test_acc=float(acc_row["test_acc"]),
        loss_at_acc_epoch=float(acc_row["test_loss"]),
    )


def lr_steps(result: Mapping[str, Any]) -> list[int]:
    """The epochs whose learning rate differs from the epoch before."""
    rates = [row["lr"] for row in result["history"]]
    return [index + 1 for index in range(1, len(rates)) if not math.isclose(rates[index], rates[index - 1], rel_tol=1e-9)]


def epochs_label(result: Mapping[str, Any]) -> str:
    """'100', '77 of 300 (early stop)' or '25 of 100 (partial)'."""
    run = len(result["history"])
    planned = result.get("epochs_planned", (result.get("params") or {}).get("epochs"))
    if not _is_number(planned) or run == planned:
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
    elif source.startswith("generated data"):  # data.GENERATED_SOURCE (make smoke's)
        label = "generated"
    elif "python batches" in source:
        label = "non-official batches" if "differ from the official" in source else "official"
    else:
        label = "other" if source else "unrecorded"
    subset = (result.get("params") or {}).get("subset")
    if not subset:
        return label
    n_train, n_test = (subset, subset) if _is_number(subset) else subset
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
    """Table 1 for the models with results, in MODEL_NAMES, beside the report's numbers.

    Losses are rounded to 4 decimals and accuracies (percent) to 2, the
    report's precision; the Δ columns are differences of those rounded values,
    so they agree with what the table shows. Notes are in `df.attrs["notes"]`.
    """
    rows = []
    for model in MODEL_NAMES:
        if model not in results:
            continue
        result = results[model]
        best = best_points(result)
        report = REPORT_TABLE1[model]
        loss = _round(best.test_loss, 4)
        acc = _round(best.test_acc * 100.0, 2)
        parameters = result.get("num_parameters")
        rows.append(
            {
                "Model": MODEL_LABELS[model],
                "Best Test Loss": loss,
                "Best Accuracy (%)": acc,
                "Best Epoch": best.loss_epoch,
                "Best-Acc Epoch": best.acc_epoch,
                "Parameters": parameters if _is_number(parameters) else pd.NA,
                "Train time (s)": train_seconds(result),
                "Epochs": epochs_label(result),
                "Device": device_label(result),
                "Data": data_label(result),
                "Report Loss": report.test_loss,
                "Report Acc (%)": report.acc_pct,
                "Report Epoch": report.epoch,
                "Δ Loss": _round(loss - report.test_loss, 4),
                "Δ Acc (pts)": _round(acc - report.acc_pct, 2),
            }
        )
    frame = pd.DataFrame(rows, columns=list(TABLE1_COLUMNS))
    frame["Parameters"] = frame["Parameters"].astype("Int64")
    frame.attrs["notes"] = list(TABLE1_NOTES)
    runs = {model: runs_of(results, model) for model in MODEL_NAMES if model in results}
    if any(len(r) > 1 for r in runs.values()):  # several seeds: mean ± std beside the single-run numbers
        position = list(frame.columns).index("Best-Acc Epoch") + 1
        for offset, (column, values) in enumerate(_seed_columns(runs).items()):
            frame.insert(position + offset, column, values)
        frame.attrs["notes"].append(SEEDS_NOTE)
    return frame


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
    if not _is_number(seconds) or not math.isfinite(seconds):
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
        return "n/a"
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
        missing_text = "Not run yet: " + _join(f"{MODEL_LABELS[m.model]} ({m.notebook})" for m in missing) + "."
    table = table1(results)
    if table.empty:
        return "No model has results yet. " + missing_text

    rows = {row["Model"]: row for _, row in table.iterrows()}
    ranked = sorted(rows.values(), key=lambda row: -row["Best Accuracy (%)"])  # stable: ties keep MODEL_NAMES
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

    comparisons = [f"{row['Model']} {row['Δ Acc (pts)']:+.2f}" for row in table.to_dict("records")]
    sentences.append(
        "Against the report, best accuracy differs by " + _join(comparisons) + " points (ours minus the report's)."
    )
    if len(ranked) > 1:
        by_label = {MODEL_LABELS[m]: m for m in MODEL_NAMES}
        report_order = sorted(ranked, key=lambda row: -REPORT_TABLE1[by_label[row["Model"]]].acc_pct)
        if [row["Model"] for row in report_order] == [row["Model"] for row in ranked]:
            sentences.append("The ranking is the report's.")
        else:
            sentences.append("The report ranks them " + _join(row["Model"] for row in report_order) + ".")
    subsets = [MODEL_LABELS[m] for m in MODEL_NAMES if m in results and (results[m].get("params") or {}).get("subset")]
    if subsets:
        sentences.append(f"{_join(subsets)} trained on a subset of the data (a smoke run), so those numbers are not comparable with the report.")
    sources = sorted({results[m].get("data_source") or "an unrecorded source" for m in MODEL_NAMES if m in results})
    if len(sources) == 1:
        sentences.append(f"Data: {sources[0]}.")
    elif sources:
        sentences.append("The runs read different data: " + _join(sources) + ".")
    if missing_text:
        sentences.append(missing_text)
    return " ".join(sentences)
