"""papermill runs the training notebooks with tiny parameters; we assert on what they recorded."""

from __future__ import annotations

import json
import math
import re

import papermill as pm
import pytest

from cifar_helpers.models.specs import NOTEBOOKS as CATALOG
from cifar_helpers.engine.config import TrainConfig
from cifar_helpers.core.paths import REPO_ROOT
from cifar_helpers.engine.train import train_model

NOTEBOOKS = {model: notebook for notebook, model in CATALOG if model}
TINY = {"EPOCHS": 2, "DEVICE": "cpu", "SUBSET": [200, 100]}


def run(notebook, tmp_path, **params):
    out = tmp_path / f"{notebook}.ipynb"
    # cwd elsewhere on purpose: paths must resolve from the repository root.
    pm.execute_notebook(str(REPO_ROOT / "notebooks" / f"{notebook}.ipynb"), str(out), parameters=params,
                        kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    return out


@pytest.fixture(scope="module")
def notebook_runs(fake_data_dir, tmp_path_factory):
    """Each training notebook once, with the tiny parameters."""
    tmp = tmp_path_factory.mktemp("notebooks")
    runs = {}
    for model, notebook in NOTEBOOKS.items():
        params = dict(TINY, DATA_DIR=str(fake_data_dir), RESULTS_DIR=str(tmp / "results"),
                      CHECKPOINT_DIR=str(tmp / "ckpt"))
        run(notebook, tmp, **params)
        runs[model] = json.loads((tmp / "results" / f"{model}.json").read_text())
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("model", list(NOTEBOOKS))
def test_notebook_records_a_complete_run(notebook_runs, model):
    result = notebook_runs[model]
    assert result["model"] == model and result["complete"] is True
    assert len(result["history"]) == 2 and result["params"]["subset"] == [200, 100]
    assert result["params"]["seed"] == 23 and result["params"]["batch_size"] == 64
    for row in result["history"]:
        assert math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"])
    for key in ("num_parameters", "device_name", "data_source", "versions", "best_loss", "best_acc",
                "stopped_early", "total_seconds"):
        assert key in result
    expected_protocol = TrainConfig.for_model(model).to_dict()
    for key in ("optimizer", "lr", "weight_decay", "augment", "scheduler", "patience"):
        assert result["params"][key] == expected_protocol[key]


@pytest.mark.slow
def test_a_notebook_learns_the_fake_data_above_chance(notebook_runs):
    # The DNN learns the generated classes in two epochs; chance is 10%.
    assert notebook_runs["dnn"]["best_acc"]["test_acc"] > 0.3


@pytest.mark.slow
def test_notebook_and_library_give_identical_histories(notebook_runs, fake_data, tmp_path):
    """The notebook (its own kernel process) and a direct call agree to the last bit."""
    cfg = TrainConfig.for_model("custom_resnet", epochs=2, subset=[200, 100])
    direct = train_model(cfg, fake_data, device="cpu", results_dir=tmp_path / "r", checkpoint_dir=tmp_path / "c",
                         log=lambda line: None)
    strip = lambda h: [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in h]  # noqa: E731
    assert strip(direct["history"]) == strip(notebook_runs["custom_resnet"]["history"])


@pytest.mark.slow
def test_05_takes_the_fast_recipe_it_does_not_declare(tmp_path, fake_data_dir):
    """params/fast.yaml's way into 05 (papermill): the recipe's names, which 05's parameters cell no longer
    declares, reach the engine."""
    recipe = {"OPTIMIZER": "sgd", "MOMENTUM": 0.8, "NESTEROV": True, "SCHEDULER": "onecycle", "WARMUP_FRACTION": 0.5}
    run("05_custom_resnet", tmp_path, **dict(TINY, EPOCHS=1, SUBSET=[100, 50], DATA_DIR=str(fake_data_dir),
                                             RESULTS_DIR=str(tmp_path / "results"),
                                             CHECKPOINT_DIR=str(tmp_path / "ckpt"), **recipe))
    params = json.loads((tmp_path / "results" / "custom_resnet.json").read_text())["params"]
    assert {name: params[name.lower()] for name in recipe} == recipe


@pytest.mark.slow
@pytest.mark.parametrize("params, message", [
    ({"EPOCHS": 0}, "EPOCHS must be a whole number >= 1"),
    ({"BATCH_SIZE": -1}, "BATCH_SIZE must be a whole number >= 1"),
    ({"DATA_DIR": "/nonexistent/cifar"}, "does not exist"),
    ({"DEVICE": "tpu"}, "DEVICE must be one of"),
    ({"EPOCH": 1}, "unknown parameter 'EPOCH' in notebooks/01_dnn.ipynb; did you mean EPOCHS?"),
    ({"epochs": 1}, "unknown parameter 'epochs' in notebooks/01_dnn.ipynb; did you mean EPOCHS?"),  # -p epochs 1
    ({"DROPOUT": 0.2}, "unknown parameter 'DROPOUT' in notebooks/01_dnn.ipynb"),  # 05's, not the DNN's
    ({"DEVICE": 1}, "DEVICE must be one of auto, cuda, mps, cpu"),  # -p DEVICE 1
    ({"SUBSET": 1000}, "SUBSET=[1000, 1000] asks for 1,000 train / 1,000 test images"),
])
def test_bad_parameters_fail_before_training_in_one_short_message(params, message, tmp_path, fake_data_dir):
    given = dict(TINY, DATA_DIR=str(fake_data_dir), RESULTS_DIR=str(tmp_path / "results"),
                 CHECKPOINT_DIR=str(tmp_path / "ckpt"))
    given.update(params)
    with pytest.raises(pm.PapermillExecutionError, match=re.escape(message)):
        run("01_dnn", tmp_path, **given)
    errors = [output for cell in json.loads((tmp_path / "01_dnn.ipynb").read_text())["cells"]
              for output in cell.get("outputs", []) if output["output_type"] == "error"]
    assert len(errors) == 1 and len(errors[0]["traceback"]) == 1  # the message, no stack of frames
    assert message.split(" (")[0] in errors[0]["traceback"][0]
    assert not (tmp_path / "ckpt").exists()  # before any training
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "results").exists()


@pytest.mark.slow
@pytest.mark.parametrize("notebook", ["04_custom_resnet_architecture", "06_analysis"])
def test_the_analysis_notebooks_refuse_a_misspelled_name_before_writing_anything(notebook, tmp_path):
    message = f"unknown parameter 'FIGURE_DIR' in notebooks/{notebook}.ipynb; did you mean FIGURES_DIR?"
    with pytest.raises(pm.PapermillExecutionError, match=r"\s+".join(map(re.escape, message.split()))):  # wrapped
        run(notebook, tmp_path, FIGURE_DIR=str(tmp_path / "figures"))
    outputs = [cell.get("outputs", []) for cell in json.loads((tmp_path / f"{notebook}.ipynb").read_text())["cells"]]
    assert sum(1 for cell in outputs for output in cell if output["output_type"] == "error") == 1
    assert not any(output.get("data") for cell in outputs for output in cell)  # no figure or table shown


@pytest.mark.slow
def test_06_shows_a_model_the_report_did_not_train_after_its_four(tmp_path, fake_data_dir):
    """The committed reference results and one more model's results file: 06 runs through, its Table 1
    has the further model's row last, with '-' for the report, and every figure is written."""
    from test_results import with_a_further_model

    results, figures = with_a_further_model(tmp_path / "results"), tmp_path / "figures"
    out = run("06_analysis", tmp_path, RESULTS_DIR=str(results), FIGURES_DIR=str(figures), DATA_DIR=str(fake_data_dir))
    rows = [line for line in (results / "table1.md").read_text().splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:]] == ["| DNN", "| CNN", "| ResNet", "| Custom ResNet", "| Wide CNN"]
    assert rows[-1].endswith(" | - | - | - | - | - |")
    assert "Wide CNN" in (results / "per_class.md").read_text().splitlines()[2]  # its header
    assert {p.name for p in figures.glob("*.png")} >= {"fig1_loss_curves.png", "test_accuracy.png",
                                                       "confusion_matrices.png"}
    shown = out.read_text()
    assert "The report has no numbers for Wide CNN." in shown and "- Wide CNN: 100 epochs" in shown
