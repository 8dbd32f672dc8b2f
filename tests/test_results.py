"""Loading results, Table 1 and the summary paragraph, on fabricated histories."""

from __future__ import annotations

import json
import math
import re
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

from cifar_helpers.core.paths import REPO_ROOT
from cifar_helpers.models.specs import MODEL_NAMES
from cifar_helpers.models.specs import SPECS as MODEL_SPECS
from cifar_helpers.report.tables import latex_escape
from cifar_helpers.report.results import (
    NOT_IN_REPORT_NOTE,
    REPORT_COLUMNS,
    REPORT_TABLE1,
    TABLE1_COLUMNS,
    Missing,
    ResultsSkippedWarning,
    best_points,
    data_label,
    device_label,
    epochs_label,
    format_duration,
    formatted_table1,
    history_frame,
    load_results,
    lr_steps,
    missing_models,
    summary_paragraph,
    table1,
    write_table1,
)

# ----------------------------------------------------------------------------- fabricated results
# (test_plots.py imports these too)


def make_result(
    model: str,
    *,
    epochs: int = 40,
    best_loss_epoch: int = 20,
    best_loss: float = 0.5,
    best_acc_epoch: int | None = None,
    best_acc: float = 0.8,
    lr: float = 0.1,
    step_size: int | None = None,
    gamma: float = 0.1,
    stopped_early: bool = False,
    seconds_per_epoch: float = 10.0,
    num_parameters: int = 1000,
) -> dict:
    """A complete result whose test loss is lowest (`best_loss`) at `best_loss_epoch`
    and whose test accuracy is highest (`best_acc`) at `best_acc_epoch`
    (default: the same epoch). With `step_size`, lr drops by `gamma` every
    `step_size` epochs, so it changes at epochs step_size+1, 2*step_size+1, ...
    """
    best_acc_epoch = best_loss_epoch if best_acc_epoch is None else best_acc_epoch
    history = []
    for epoch in range(1, epochs + 1):
        rate = lr * gamma ** ((epoch - 1) // step_size) if step_size else lr
        history.append(
            {
                "epoch": epoch,
                "train_loss": 2.3 / epoch,
                "train_acc": min(0.99, 0.3 + 0.02 * epoch),
                # V shapes: strictly larger away from the chosen epoch.
                "test_loss": best_loss + 0.02 * abs(epoch - best_loss_epoch),
                "test_acc": best_acc - 0.005 * abs(epoch - best_acc_epoch),
                "lr": rate,
                "train_seconds": seconds_per_epoch,
                "eval_seconds": 1.0,
            }
        )
    return {
        "schema": 1,
        "model": model,
        "complete": True,
        "fingerprint": "synthetic",
        "params": {"model": model, "epochs": epochs, "subset": None, "step_size": step_size, "gamma": gamma},
        "num_parameters": num_parameters,
        "device": "cpu",
        "device_name": "test",
        "data_source": "synthetic",
        "versions": {"python": "3", "torch": "2", "torchvision": "0"},
        "git_commit": None,
        "history": history,
        "best_loss": {"epoch": best_loss_epoch, "test_loss": best_loss, "test_acc": history[best_loss_epoch - 1]["test_acc"]},
        "best_acc": {"epoch": best_acc_epoch, "test_loss": history[best_acc_epoch - 1]["test_loss"], "test_acc": best_acc},
        "stopped_early": stopped_early,
        "stop_epoch": epochs,
        "total_seconds": epochs * (seconds_per_epoch + 1.0),
        "finished_at": "2026-01-01T00:00:00+00:00",
    }


# Distinct minima per model; custom_resnet stops early and has lr steps.
SPECS = {
    "dnn": dict(epochs=30, best_loss_epoch=17, best_loss=1.3, best_acc_epoch=19, best_acc=0.5312, seconds_per_epoch=3.0, num_parameters=1_738_890),
    "cnn": dict(epochs=50, best_loss_epoch=45, best_loss=0.7, best_acc=0.7789, seconds_per_epoch=5.5, num_parameters=62_006),
    "resnet": dict(epochs=25, best_loss_epoch=11, best_loss=0.6, best_acc=0.8123, seconds_per_epoch=9.25, num_parameters=272_474),
    "custom_resnet": dict(
        epochs=77, best_loss_epoch=62, best_loss=0.3, best_acc=0.9105, lr=0.001, step_size=30,
        stopped_early=True, seconds_per_epoch=60.0, num_parameters=2_000_000,
    ),
}


def all_results(models=MODEL_NAMES) -> dict[str, dict]:
    return {model: make_result(model, **SPECS[model]) for model in models}


def write_results(folder: Path, results: dict[str, dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for model, result in results.items():
        (folder / f"{model}.json").write_text(json.dumps(result), encoding="utf-8")
    return folder


# ----------------------------------------------------------------------------- the fabricator itself


def test_fabricated_history_has_the_requested_minima_and_lr_steps():
    result = make_result("custom_resnet", **SPECS["custom_resnet"])
    frame = history_frame(result)
    assert len(frame) == 77 and list(frame["epoch"]) == list(range(1, 78))
    assert frame["test_loss"].idxmin() + 1 == 62 and frame["test_loss"].min() == pytest.approx(0.3)
    assert lr_steps(result) == [31, 61]
    assert frame["test_acc_pct"].max() == pytest.approx(91.05)


# ----------------------------------------------------------------------------- loading


def test_load_results_reads_a_full_set_in_model_order(tmp_path):
    folder = write_results(tmp_path, {model: all_results()[model] for model in reversed(MODEL_NAMES)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean folder warns about nothing
        results = load_results(folder)
    assert list(results) == list(MODEL_NAMES)
    assert results.skipped == {}
    assert missing_models(results) == []


def test_load_results_skips_bad_files_with_reasons(tmp_path):
    good = all_results(["dnn"])
    incomplete = make_result("resnet", **SPECS["resnet"]) | {"complete": False}
    wrong_model = make_result("cnn", **SPECS["cnn"])
    newer = make_result("custom_resnet", **SPECS["custom_resnet"]) | {"schema": 2}
    write_results(tmp_path, good | {"resnet": incomplete, "custom_resnet": newer})
    (tmp_path / "cnn.json").write_text('{"schema": 1, "model": "cnn", "hist', encoding="utf-8")
    (tmp_path / "table1.json").write_text(json.dumps(wrong_model), encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not json at all", encoding="utf-8")

    with pytest.warns(ResultsSkippedWarning, match="skipped 4 file"):
        results = load_results(tmp_path)

    assert list(results) == ["dnn"]
    assert set(results.skipped) == {"cnn.json", "resnet.json", "custom_resnet.json", "table1.json"}
    assert "unreadable" in results.skipped["cnn.json"] and "02_cnn" in results.skipped["cnn.json"]
    assert "incomplete" in results.skipped["resnet.json"] and "03_resnet" in results.skipped["resnet.json"]
    assert "schema" in results.skipped["custom_resnet.json"]
    assert "not a model result" in results.skipped["table1.json"]
    assert missing_models(results) == [
        Missing("cnn", "notebooks/02_cnn.ipynb"),
        Missing("resnet", "notebooks/03_resnet.ipynb"),
        Missing("custom_resnet", "notebooks/05_custom_resnet.ipynb"),
    ]


def test_a_partial_run_loads_and_table1_labels_it(tmp_path):
    partial = make_result("resnet", **SPECS["resnet"]) | {"complete": False, "epochs_planned": 100}
    results = load_results(write_results(tmp_path, {"resnet": partial}), warn=False)
    assert list(results) == ["resnet"] and results.skipped == {}
    row = table1(results).iloc[0]
    assert row["Epochs"] == "25 of 100 (partial)" and row["Best Epoch"] == 11
    early = make_result("custom_resnet", **SPECS["custom_resnet"]) | {"epochs_planned": 300}
    assert epochs_label(early) == "77 of 300 (early stop)"
    assert epochs_label(make_result("dnn", **SPECS["dnn"])) == "30"


@pytest.mark.parametrize("source, label", [
    ("JPEG image folder (lossy copy) at /x (train/<class>/, test/<class>/)", "JPEG copy"),
    ("official python batches at /x/cifar-10-batches-py", "official"),
    ("official python batches at /x; checksums differ from the official release", "non-official batches"),
    ("generated data (cifar_helpers.data.fake) at /x/cifar-10-batches-py", "generated"),
    ("400 train / 200 test subset (seed 23) of official python batches at /x", "official, subset 400/200"),
    ("400 train / 200 test subset (seed 23) of generated data (cifar_helpers.data.fake) at /x", "generated, subset 400/200"),
    ("", "unrecorded"),
])
def test_data_label_names_the_copy_a_run_read(source, label):
    subset = [400, 200] if "subset" in source else None
    assert data_label({"data_source": source, "params": {"subset": subset}}) == label


@pytest.mark.parametrize("recorded, label", [
    ({"device_name": "CPU (1 thread)", "cuda_fp32_math": None}, "CPU (1 thread)"),
    ({"device_name": "NVIDIA H200", "cuda_fp32_math": {"convolutions": "tf32", "matmul": "fp32"}},
     "NVIDIA H200 (TF32 convolutions)"),
    ({"device_name": "NVIDIA H200", "cuda_fp32_math": {"convolutions": "fp32", "matmul": "fp32"}}, "NVIDIA H200"),
    ({"device_name": "NVIDIA H200", "cuda_fp32_math": {"convolutions": "tf32", "matmul": "fp32"}, "amp": True},
     "NVIDIA H200"),  # bf16 autocast: the table's precision is the run's, not TF32's
    ({"device_name": "NVIDIA H200"}, "NVIDIA H200"),  # recorded before the field existed
    ({"device": "cuda"}, "cuda"),
])
def test_device_label_says_when_cuda_convolutions_ran_in_tf32(recorded, label):
    amp = recorded.pop("amp", False)
    assert device_label({**recorded, "params": {"amp": amp}}) == label


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda r: r | {"model": "cnn"}, "'model' field is 'cnn'"),
        (lambda r: r | {"history": []}, "'history' is missing or empty"),
        (lambda r: r | {"history": r["history"][:3] + r["history"][4:]}, "expected 4"),
        (lambda r: r | {"history": [dict(r["history"][0], test_loss=None)] + r["history"][1:]}, "lacks numeric test_loss"),
        (lambda r: r | {"stop_epoch": 99}, "stop_epoch is 99"),
        (lambda r: r | {"history": [dict(row, test_loss=math.nan) for row in r["history"]]}, "no epoch has a finite test loss"),
        (lambda r: r | {"history": [dict(row, test_acc=math.nan) for row in r["history"]]}, "no epoch has a finite test accuracy"),
        (lambda r: r | {"history": [dict(row, test_acc=row["test_acc"] * 100) for row in r["history"]]},
         "accuracies are fractions in [0, 1], not percent"),
        (lambda r: [r], "expected a JSON object"),
    ],
)
def test_load_results_names_what_is_invalid(tmp_path, damage, reason):
    (tmp_path / "dnn.json").write_text(json.dumps(damage(make_result("dnn", **SPECS["dnn"]))), encoding="utf-8")
    results = load_results(tmp_path, warn=False)
    assert dict(results) == {}
    assert reason in results.skipped["dnn.json"]


def test_load_results_on_a_missing_folder_warns_and_returns_nothing(tmp_path):
    with pytest.warns(ResultsSkippedWarning, match="does not exist"):
        results = load_results(tmp_path / "nowhere")
    assert dict(results) == {} and [m.model for m in missing_models(results)] == list(MODEL_NAMES)


def test_best_points_ignore_non_finite_epochs_and_prefer_the_earliest_tie():
    result = make_result("dnn", epochs=10, best_loss_epoch=4, best_loss=1.0)
    result["history"][7]["test_loss"] = -math.inf  # a diverged epoch must not win
    result["history"][8]["test_loss"] = math.nan
    result["history"][5]["test_loss"] = 1.0  # tie with epoch 4
    best = best_points(result)
    assert (best.loss_epoch, best.test_loss) == (4, 1.0)
    assert best.acc_epoch == 4 and best.test_acc == pytest.approx(0.8)


# ----------------------------------------------------------------------------- Table 1


def test_report_numbers_are_the_reports():
    assert {m: (r.test_loss, r.acc_pct, r.epoch) for m, r in REPORT_TABLE1.items()} == {
        "dnn": (1.3459, 52.64, 17),
        "cnn": (0.6787, 77.17, 67),
        "resnet": (0.5801, 80.85, 11),
        "custom_resnet": (0.3053, 90.47, 62),
    }
    assert "77.14" in REPORT_TABLE1["cnn"].note
    assert [spec.label for spec in MODEL_SPECS.values()] == ["DNN", "CNN", "ResNet", "Custom ResNet"]
    assert [Path(MODEL_SPECS[m].notebook_path).stem for m in MODEL_NAMES] == ["01_dnn", "02_cnn", "03_resnet", "05_custom_resnet"]


def test_table1_values_are_the_fabricated_minima_beside_the_report():
    df = table1(all_results())
    assert list(df.columns) == list(TABLE1_COLUMNS)
    assert list(df["Model"]) == [MODEL_SPECS[m].label for m in MODEL_NAMES]
    for model, row in zip(MODEL_NAMES, df.to_dict("records")):
        spec, report = SPECS[model], REPORT_TABLE1[model]
        loss, acc = round(spec["best_loss"], 4), round(spec["best_acc"] * 100, 2)
        assert row["Best Test Loss"] == pytest.approx(loss)
        assert row["Best Accuracy (%)"] == pytest.approx(acc)
        assert row["Best Epoch"] == spec["best_loss_epoch"]
        assert row["Best-Acc Epoch"] == spec.get("best_acc_epoch", spec["best_loss_epoch"])
        assert row["Parameters"] == spec["num_parameters"]
        assert row["Train time (s)"] == pytest.approx(spec["epochs"] * spec["seconds_per_epoch"])
        assert (row["Report Loss"], row["Report Acc (%)"], row["Report Epoch"]) == (report.test_loss, report.acc_pct, report.epoch)
        assert row["Δ Loss"] == pytest.approx(loss - report.test_loss, abs=1e-9)
        assert row["Δ Acc (pts)"] == pytest.approx(acc - report.acc_pct, abs=1e-9)
    assert any("train_seconds" in note for note in df.attrs["notes"])


def test_table1_has_rows_only_for_present_models():
    df = table1(all_results(["resnet", "dnn"]))
    assert list(df["Model"]) == ["DNN", "ResNet"]
    assert table1({}).empty and list(table1({}).columns) == list(TABLE1_COLUMNS)


def test_format_duration_is_human_readable():
    assert [format_duration(s) for s in (42.4, 725, 3 * 3600 + 7 * 60 + 20, 864_000, math.nan)] == [
        "42 s", "12 min 05 s", "3 h 07 min", "10 days 00 h", "n/a"]


def test_a_notebooks_results_dir_is_taken_from_the_repository_and_none_is_its_results_folder(tmp_path, monkeypatch):
    from cifar_helpers.core import paths

    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path)  # stands for the repository
    write_results(tmp_path / "results", all_results(["dnn"]))
    write_results(tmp_path / "runs" / "other", all_results(["cnn"]))
    assert list(load_results(None)) == ["dnn"] and list(load_results("runs/other")) == ["cnn"]
    assert [p.parent for p in write_table1(table1(load_results(None)), None)] == [tmp_path / "results"] * 3
    assert write_table1(table1({}), "runs/other")[0] == tmp_path / "runs" / "other" / "table1.csv"


def test_write_table1_writes_csv_md_and_tex(tmp_path):
    df = table1(all_results())
    paths = write_table1(df, tmp_path / "out")
    assert [p.name for p in paths] == ["table1.csv", "table1.md", "table1.tex"]
    assert all(p.is_file() for p in paths)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]

    back = pd.read_csv(paths[0], dtype={"Epochs": str})
    pd.testing.assert_frame_equal(back, df, check_dtype=False)

    md = paths[1].read_text(encoding="utf-8").splitlines()
    header = next(i for i, line in enumerate(md) if line.startswith("| Model |"))
    assert md[header].count("|") == len(TABLE1_COLUMNS) + 1 and "| Train time |" in md[header]
    assert md[header + 1] == "|" + "|".join("---" if c in ("Model", "Epochs", "Device", "Data") else "---:"
                                             for c in TABLE1_COLUMNS) + "|"
    rows = md[header + 2 : header + 2 + len(df)]
    assert rows[3].startswith("| Custom ResNet | 0.3000 | 91.05 | 62 | 62 | 2,000,000 | 1 h 17 min |")
    assert any("train_seconds" in line for line in md)

    tex = paths[2].read_text(encoding="utf-8")
    body = [line for line in tex.splitlines() if not line.startswith("%")]
    assert body[0].startswith(r"\begin{tabular}{l") and body[-1] == r"\end{tabular}"
    assert tex.isascii(), "the fragment must compile without inputenc"
    assert r"Best Accuracy (\%)" in tex and r"$\Delta$ Acc (pts)" in tex
    assert r"& $-$0.0459 &" in tex  # DNN's Δ Loss, 1.3000 - 1.3459, with a typeset minus
    assert all(not re.search(r"(?<!\\)[%_#]", line) for line in body), "unescaped LaTeX special in the tabular"
    rows = [line for line in body if line.endswith(r"\\")]
    assert all(len(re.findall(r"(?<!\\)&", line)) == len(TABLE1_COLUMNS) - 1 for line in rows)
    assert len(rows) == len(df) + 1
    assert tex.count("{") - tex.count(r"\{") == tex.count("}") - tex.count(r"\}")


def test_latex_escape_covers_the_specials():
    assert latex_escape("50% of a_b & c#1 $x$ {y} ~^\\") == (
        r"50\% of a\_b \& c\#1 \$x\$ \{y\} \textasciitilde{}\textasciicircum{}\textbackslash{}"
    )


# ----------------------------------------------------------------------------- summary


NUMBER = re.compile(r"[+-]?\d[\d,]*(?:\.\d+)?")


def _numbers_in(text: str) -> list[str]:
    text = re.sub(r"notebooks/\S+\.ipynb", "", text)
    return NUMBER.findall(text)


def _allowed_numbers(results) -> set[str]:
    """Every number the paragraph may state: the table's values as shown, and gaps between accuracies."""
    shown = formatted_table1(table1(results))
    allowed = {cell for column in shown.columns for cell in shown[column]}
    accuracies = [round(SPECS[m]["best_acc"] * 100, 2) for m in results]
    allowed |= {f"{abs(a - b):.2f}" for a in accuracies for b in accuracies}
    return allowed


def test_summary_states_the_ranking_and_only_computed_numbers():
    results = all_results()
    text = summary_paragraph(results)

    ranking = text.split("Ranked by best test accuracy:")[1].split("). ")[0]
    positions = [ranking.index(label) for label in ("Custom ResNet 91.05%", "ResNet 81.23%", "CNN 77.89%", "DNN 53.12%")]
    assert positions == sorted(positions)
    assert "Custom ResNet leads ResNet by 9.82 points" in text
    assert "The ranking is the report's." in text
    assert "Not run yet" not in text
    numbers = _numbers_in(text)
    assert numbers and set(numbers) <= _allowed_numbers(results)


def test_summary_says_when_the_ranking_differs_from_the_report():
    results = all_results(["dnn", "cnn"])
    results["dnn"] = make_result("dnn", **(SPECS["dnn"] | {"best_acc": 0.9}))
    text = summary_paragraph(results)
    assert "DNN 90.00%" in text and "The report ranks them CNN and DNN." in text


@pytest.mark.parametrize("present", [(), ("cnn",), ("dnn", "custom_resnet"), ("dnn", "cnn", "resnet")])
def test_summary_handles_partial_sets_and_names_the_missing_notebooks(present):
    results = all_results(present)
    text = summary_paragraph(results)
    for model in MODEL_NAMES:
        assert (MODEL_SPECS[model].notebook_path in text) == (model not in present)
    assert set(_numbers_in(text)) <= _allowed_numbers(results)
    if not present:
        assert text.startswith("No model has results yet.")
    if len(present) == 1:
        assert text.startswith("Only CNN has results: best test accuracy 77.89% (epoch 45)")


def test_summary_flags_subset_runs():
    results = all_results(["dnn"])
    results["dnn"]["params"]["subset"] = 512
    assert "subset of the data" in summary_paragraph(results)


def test_summary_names_the_data_the_runs_read():
    results = all_results()
    assert "Data: synthetic." in summary_paragraph(results)
    results["dnn"] = {**results["dnn"], "data_source": "JPEG image folder (lossy copy) at /x"}
    assert "The runs read different data: JPEG image folder (lossy copy) at /x and synthetic." in summary_paragraph(results)


def test_seeds_load_beside_the_main_run_and_table1_shows_mean_and_std(tmp_path):
    main = make_result("dnn", **SPECS["dnn"])
    main["params"]["seed"] = 23
    other = make_result("dnn", **{**SPECS["dnn"], "best_acc": 0.5512, "best_loss": 1.25})
    other["params"]["seed"] = 24
    write_results(tmp_path, {"dnn": main, "cnn": make_result("cnn", **SPECS["cnn"])})
    write_results(tmp_path / "seed-24", {"dnn": other})
    results = load_results(tmp_path, warn=False)
    assert results["dnn"] is not None and [r["params"]["seed"] for r in results.seeds["dnn"]] == [23, 24]
    assert len(results.seeds["cnn"]) == 1
    df = table1(results)
    assert df.loc[0, "Best Accuracy (%)"] == 53.12  # the main seed's run
    assert df.loc[0, "Best Acc over seeds (%)"] == "54.12 ± 1.41 (n=2)"  # mean 54.12, std |55.12-53.12|/sqrt(2)
    assert df.loc[0, "Best Loss over seeds"] == "1.2750 ± 0.0354 (n=2)"
    assert df.loc[1, "Best Acc over seeds (%)"].endswith("(n=1)")
    assert any("Over seeds" in note for note in df.attrs["notes"])


def test_one_seed_keeps_table1_as_it_was(tmp_path):
    results = load_results(write_results(tmp_path, all_results()), warn=False)
    assert list(table1(results).columns) == list(TABLE1_COLUMNS)


def test_only_seeds_of_the_same_run_are_averaged_and_the_odd_ones_are_named(tmp_path):
    def seed_run(seed, best_acc, **changes):
        run = make_result("dnn", **{**SPECS["dnn"], "best_acc": best_acc})
        run["params"]["seed"] = seed
        run.update(data_digest="d1", architecture={"hidden": [512, 256]})
        for key, value in changes.items():
            (run["params"] if key in run["params"] else run)[key] = value
        return run

    write_results(tmp_path, {"dnn": seed_run(23, 0.5312)})
    write_results(tmp_path / "seed-24", {"dnn": seed_run(24, 0.9, data_digest="d2")})  # left from other data
    write_results(tmp_path / "seed-25", {"dnn": seed_run(25, 0.5512, eval_batch_size=100)})  # the same run
    write_results(tmp_path / "seed-26", {"dnn": seed_run(26, 0.9, epochs=3)})
    write_results(tmp_path / "seed-27", {"dnn": seed_run(27, 0.9, architecture={"hidden": [64]})})
    with pytest.warns(ResultsSkippedWarning, match="seed-24/dnn.json: left out of the mean over seeds"):
        results = load_results(tmp_path)
    assert [run["params"]["seed"] for run in results.seeds["dnn"]] == [23, 25]
    assert results.skipped == {
        "seed-24/dnn.json": "left out of the mean over seeds: trained on other data (data digest d2, not d1) than dnn.json",
        "seed-26/dnn.json": "left out of the mean over seeds: trained with other parameters (epochs: 30 -> 3) than dnn.json",
        "seed-27/dnn.json": "left out of the mean over seeds: trained another network (hidden: [512, 256] -> [64]) "
                            "than dnn.json",
    }
    assert table1(results).loc[0, "Best Acc over seeds (%)"] == "54.12 ± 1.41 (n=2)"


def test_without_a_main_run_the_first_seed_stands_for_the_others(tmp_path):
    first = make_result("dnn", **SPECS["dnn"])
    other = make_result("dnn", **{**SPECS["dnn"], "epochs": 31})
    write_results(tmp_path / "seed-24", {"dnn": first})
    write_results(tmp_path / "seed-25", {"dnn": other})
    results = load_results(tmp_path, warn=False)
    assert results["dnn"]["history"] == first["history"] and len(results.seeds["dnn"]) == 1
    assert "than seed-24/dnn.json" in results.skipped["seed-25/dnn.json"]


# ----------------------------------------------------------------------------- a model the report did not train

REFERENCE_RESULTS = REPO_ROOT / "reference" / "cpu-jpeg" / "results"


def with_a_further_model(folder: Path, name: str = "wide_cnn", label: str | None = "Wide CNN",
                         source: str = "cnn") -> Path:
    """The committed reference results, and the `source` run again as `name`, a model the report did not
    train (with the `label` its results file gives, or none)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in REFERENCE_RESULTS.glob("*.json"):
        shutil.copy(path, folder / path.name)
    record = json.loads((REFERENCE_RESULTS / f"{source}.json").read_text(encoding="utf-8"))
    record.update(model=name, params=dict(record["params"], model=name))
    if label:
        record["label"] = label
    (folder / f"{name}.json").write_text(json.dumps(record), encoding="utf-8")
    return folder


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ")]


def test_the_reference_table1_is_the_one_06_wrote(tmp_path):
    """Re-rendered from the committed results, Table 1 is the committed one (the .tex names its writer on its
    first line, a module that has moved since)."""
    written = write_table1(table1(load_results(REFERENCE_RESULTS)), tmp_path)
    for path in written:
        ours, committed = (p.read_text(encoding="utf-8").splitlines() for p in (path, REFERENCE_RESULTS / path.name))
        first = 1 if path.suffix == ".tex" else 0
        assert ours[first:] == committed[first:], path.name


def test_table1_takes_a_further_model_after_the_reports_four_with_dashes_for_the_report(tmp_path):
    folder = with_a_further_model(tmp_path / "results")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a further model's results file is a result, not a skipped file
        results = load_results(folder)
    assert list(results) == [*MODEL_NAMES, "wide_cnn"] and missing_models(results) == []
    df = table1(results)
    assert list(df["Model"]) == ["DNN", "CNN", "ResNet", "Custom ResNet", "Wide CNN"]
    assert df[list(REPORT_COLUMNS)].iloc[4].isna().all() and df[list(REPORT_COLUMNS)].iloc[:4].notna().all().all()
    assert df.attrs["notes"][-1] == NOT_IN_REPORT_NOTE
    csv, md, tex = write_table1(df, folder)

    reference = table_lines((REFERENCE_RESULTS / "table1.md").read_text(encoding="utf-8"))
    lines = table_lines(md.read_text(encoding="utf-8"))
    assert lines[:5] == reference  # the report's models' rows as the committed table has them
    assert lines[5].startswith("| Wide CNN | 0.7796 | 74.12 | 49 | 55 | 666,858 | 4 h 08 min | 100 |")
    assert lines[5].endswith(" | - | - | - | - | - |")
    assert f"- {NOT_IN_REPORT_NOTE}" in md.read_text(encoding="utf-8")
    assert "Wide CNN & 0.7796 & 74.12 &" in tex.read_text(encoding="utf-8")
    assert tex.read_text(encoding="utf-8").count(" & - & - & - & - & - \\\\") == 1
    raw = pd.read_csv(csv)
    assert raw[list(REPORT_COLUMNS)].iloc[4].isna().all() and list(raw["Report Epoch"][:4]) == [17, 67, 11, 62]


def test_the_summary_compares_only_the_reports_models_with_the_report(tmp_path):
    results = load_results(with_a_further_model(tmp_path), warn=False)
    text = summary_paragraph(results)
    assert "Wide CNN 74.12% (epoch 55)" in text  # ranked with the others
    deltas = table1(results).set_index("Model")["Δ Acc (pts)"]  # the committed runs go on: read, not written here
    against = ", ".join(f"{label} {deltas[label]:+.2f}" for label in ("DNN", "CNN", "ResNet"))
    assert f"Against the report, best accuracy differs by {against} and Custom ResNet {deltas['Custom ResNet']:+.2f}" in text
    assert "The report has no numbers for Wide CNN." in text
    ranking = text.split("The report has no numbers for Wide CNN. ")[1]  # which, as the runs go on, may change
    assert ranking.startswith(("The report's models rank as in the report.",
                               "The report ranks its models Custom ResNet, ResNet, CNN and DNN."))


def test_a_further_model_without_a_label_is_shown_by_its_name_and_a_broken_one_is_skipped(tmp_path):
    folder = with_a_further_model(tmp_path, name="my_net", label=None)
    (folder / "other_net.json").write_text('{"schema": 1, "model": "other_net", "hist', encoding="utf-8")
    results = load_results(folder, warn=False)
    assert list(results) == [*MODEL_NAMES, "my_net"] and table1(results)["Model"].iloc[-1] == "my_net"
    assert "unreadable" in results.skipped["other_net.json"] and "'other_net'" in results.skipped["other_net.json"]
