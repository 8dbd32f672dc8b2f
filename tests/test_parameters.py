"""Notebook parameters: one mapping to TrainConfig, and no silently ignored name."""

from __future__ import annotations

import json
import re

import pytest

from cifar_helpers.models.specs import NOTEBOOKS
from cifar_helpers.engine.config import ConfigError, TrainConfig
from cifar_helpers.engine.device import DeviceError
from cifar_helpers.report.chapter import protocol_table
from cifar_helpers.models import model_options
from cifar_helpers.engine.fast import RECIPE_PARAMETERS
from cifar_helpers.engine.parameters import (
    KNOWN_PARAMETERS,
    MODEL_PARAMETERS,
    PROTOCOL_PARAMETERS,
    check_parameters,
    declared_parameters,
    names_set,
    parameters_cell,
    training_run,
    unknown_parameter_message,
)


def test_parameters_map_onto_the_config_and_the_run(fake_data_dir, tmp_path):
    run = training_run("custom_resnet", {
        "EPOCHS": 3, "LR": 2e-3, "DROPOUT": 0.2, "SUBSET": [40, 20], "DEVICE": "cpu", "DATA_DIR": str(fake_data_dir),
        "RESULTS_DIR": str(tmp_path / "r"), "CHECKPOINT_DIR": str(tmp_path / "c"), "STOP_AFTER": 2,
        "EVAL_BATCH_SIZE": 7, "lowercase_helper": 1, "print": print,
    })
    cfg = run.config
    assert (cfg.model, cfg.epochs, cfg.lr, cfg.subset, cfg.eval_batch_size) == ("custom_resnet", 3, 2e-3, (40, 20), 7)
    assert cfg.model_options == {"dropout": 0.2} and cfg.optimizer == "adam"  # the report's protocol otherwise
    assert run.device.type == "cpu" and run.data_dir == fake_data_dir
    assert run.train_kwargs()["stop_after"] == 2 and run.results_dir == tmp_path / "r"


def test_defaults_are_the_report_protocol(fake_data_dir):
    run = training_run("cnn", {"DATA_DIR": str(fake_data_dir)})
    assert (run.config.lr, run.config.momentum, run.config.epochs, run.stop_after) == (0.1, 0.9, 100, None)


@pytest.mark.parametrize("typo, suggestion", [("EPOCH", "EPOCHS"), ("LEARNING_RATE", None), ("WEIGHTDECAY", "WEIGHT_DECAY"),
                                              ("BATCHSIZE", "BATCH_SIZE")])
def test_an_unknown_name_stops_the_notebook_and_names_the_closest(typo, suggestion, fake_data_dir):
    with pytest.raises(ConfigError, match=f"unknown parameter '{typo}' in notebooks/01_dnn.ipynb") as error:
        training_run("dnn", {typo: 1, "DATA_DIR": str(fake_data_dir)})
    if suggestion:
        assert f"did you mean {suggestion}?" in str(error.value)
    else:
        assert "known: " in str(error.value)


def test_lowercase_names_in_a_parameter_file_get_the_uppercase_suggestion():
    assert "did you mean EPOCHS?" in unknown_parameter_message("epochs", KNOWN_PARAMETERS, "x")


@pytest.mark.parametrize("bad", [0, 1.5, "2"])
def test_stop_after_is_checked_before_any_work(bad, fake_data_dir):
    with pytest.raises(ConfigError, match="STOP_AFTER"):
        training_run("dnn", {"STOP_AFTER": bad, "DATA_DIR": str(fake_data_dir)})


def test_protocol_table_shows_the_settings_that_matter(fake_data_dir):
    lecture = protocol_table(training_run("dnn", {"DATA_DIR": str(fake_data_dir)}).config)
    assert list(lecture.columns) == ["setting"]
    assert lecture.loc["optimizer", "setting"] == "SGD, lr 0.1, momentum 0.9, weight decay 0.0005"
    assert lecture.loc["preprocessing", "setting"] == "normalisation only"
    assert lecture.loc["epochs", "setting"] == "100" and "dropout" not in lecture.index
    # The table comes before the data are read: it claims no count (a smoke run's 400 images read as 50,000)
    assert lecture.loc["data", "setting"] == "all training and test images"
    custom = protocol_table(training_run("custom_resnet", {"DATA_DIR": str(fake_data_dir), "SUBSET": 100}).config)
    assert custom.loc["schedule", "setting"] == "StepLR: × 0.1 every 30 epochs"
    assert custom.loc["epochs", "setting"].startswith("at most 300, early stopping after 15")
    assert custom.loc["data", "setting"] == "100 train / 100 test images"
    assert custom.loc["dropout", "setting"].startswith("0.1")
    assert custom.loc["optimizer", "setting"] == "Adam, lr 0.001, weight decay 0.0005"
    adamw = protocol_table(TrainConfig.for_model("custom_resnet", optimizer="adamw"))
    assert adamw.loc["optimizer", "setting"] == "AdamW, lr 0.001, weight decay 0.0005 (decoupled)"
    assert "denormals" not in custom.index
    flushing = protocol_table(training_run("custom_resnet", {"DATA_DIR": str(fake_data_dir),
                                                             "FLUSH_DENORMALS": True}).config)
    assert flushing.loc["denormals", "setting"].endswith("in weights and optimizer state (FLUSH_DENORMALS)")


@pytest.mark.parametrize("notebook, model", [(nb, m) for nb, m in NOTEBOOKS if m])
def test_each_notebooks_defaults_are_the_packages_protocol(notebook, model):
    """One home for each default: the notebooks' literals must equal TrainConfig's protocols."""
    declared = declared_parameters(notebook)
    config = TrainConfig.for_model(model)
    for name, field in PROTOCOL_PARAMETERS.items():
        if name in declared:
            assert declared[name] == getattr(config, field), name
    for name, option in MODEL_PARAMETERS.items():
        if name in declared:
            assert declared[name] == config.model_options[option] == model_options(model)[option], name
    assert set(declared) <= KNOWN_PARAMETERS


# ----------------------------------------------------------------------------- which names a kernel set

P = 'SEED = 23\nEPOCHS = 100\nDATA_DIR = None\nDEVICE = "auto"\n'  # a parameters cell
TYPO = P.replace("EPOCHS = 100", "EPOCH = 3")
CHECK_01 = 'from cifar_helpers import training_run\n\nrun = training_run("dnn", globals())\n'
DECLARED = {"SEED", "EPOCHS", "DATA_DIR", "DEVICE"}


@pytest.mark.parametrize("history, expected", [
    # papermill: the parameters cell, its injected cell (here with a lowercase name), then the check
    (["", P, "# Parameters\nepochs = 1\n", CHECK_01], DECLARED | {"epochs"}),
    # JupyterLab: a typo, the check refuses it, the cell is fixed and run again, the check again
    (["", TYPO, CHECK_01, P.replace("100", "3"), CHECK_01], DECLARED),
    # the check run again without a fix, or after other cells, still sees the typo
    (["", TYPO, CHECK_01, CHECK_01], DECLARED - {"EPOCHS"} | {"EPOCH"}),
    (["", TYPO, "x = compute()\n", CHECK_01], DECLARED - {"EPOCHS"} | {"EPOCH"}),
    (["", P, "import os\nEPOCH = 3\n", CHECK_01], DECLARED | {"EPOCH"}),
    # a parameter set again after the notebook ran
    (["", P, CHECK_01, "data = load(run)\n", "LR: float = 0.01  # quicker\n", CHECK_01], DECLARED | {"LR"}),
    # a name set before the parameters cell ran again is not one of them
    (["", P, CHECK_01, "EPOCH = 5\n", CHECK_01, P, CHECK_01], DECLARED),
    # lowercase names count only in the cells of `NAME = literal` lines just before the check
    (["", P, CHECK_01, "threshold = 0.5\n", "x = f(threshold)\n", CHECK_01], DECLARED),
    (["", "EPOCHS, lr = 3, 0.1\n'a note'\n", CHECK_01], {"EPOCHS", "lr"}),
    (["", CHECK_01], set()),
])
def test_the_names_checked_are_those_set_since_the_parameters_cell_ran(history, expected):
    assert names_set(history, P) == expected


def test_a_fixed_typo_passes_though_the_old_name_is_still_in_the_kernel(fake_data_dir):
    cell = parameters_cell("01_dnn")
    namespace = {"EPOCH": 3, "EPOCHS": 3, "DATA_DIR": str(fake_data_dir), "DEVICE": "cpu",
                 "In": ["", cell.replace("EPOCHS = 100", "EPOCH = 3"), CHECK_01,
                        cell.replace("EPOCHS = 100", "EPOCHS = 3"), CHECK_01]}
    assert training_run("dnn", namespace).config.epochs == 3
    namespace["In"] = namespace["In"][:3]  # before the fix: the check refuses EPOCH
    with pytest.raises(ConfigError, match="unknown parameter 'EPOCH' in notebooks/01_dnn.ipynb; did you mean EPOCHS?"):
        training_run("dnn", namespace)


@pytest.mark.parametrize("name, message", [
    ("epochs", "unknown parameter 'epochs' in notebooks/01_dnn.ipynb; did you mean EPOCHS?"),
    ("Epochs", "did you mean EPOCHS?"),
    ("DROPOUT", "unknown parameter 'DROPOUT' in notebooks/01_dnn.ipynb"),  # 05's, not 01's
    ("OPTIMIZER", "unknown parameter 'OPTIMIZER' in notebooks/01_dnn.ipynb"),
])
def test_a_training_notebook_refuses_any_name_it_does_not_declare_in_any_case(name, message, fake_data_dir):
    with pytest.raises(ConfigError, match=re.escape(message)):
        training_run("dnn", {name: 1, "DATA_DIR": str(fake_data_dir)})


def test_a_training_notebook_takes_the_fast_recipes_names_without_declaring_them(fake_data_dir):
    """05's parameters cell is the report's protocol; params/fast.yaml still passes the recipe's names,
    because the engine knows them. Any other undeclared name is still refused."""
    assert not set(RECIPE_PARAMETERS) & set(declared_parameters("05_custom_resnet"))
    assert set(RECIPE_PARAMETERS) <= KNOWN_PARAMETERS
    recipe = {"OPTIMIZER": "sgd", "MOMENTUM": 0.8, "NESTEROV": True, "SCHEDULER": "onecycle", "WARMUP_FRACTION": 0.1}
    cfg = training_run("custom_resnet", {"DATA_DIR": str(fake_data_dir), **recipe}).config
    assert (cfg.optimizer, cfg.momentum, cfg.nesterov, cfg.scheduler, cfg.warmup_fraction) == tuple(recipe.values())
    with pytest.raises(ConfigError, match=re.escape("unknown parameter 'NESTROV' in notebooks/05_custom_resnet.ipynb; "
                                                    "did you mean NESTEROV?")):
        training_run("custom_resnet", {"DATA_DIR": str(fake_data_dir), "NESTROV": True})
    with pytest.raises(ConfigError, match="unknown parameter 'NESTEROV' in notebooks/06_analysis.ipynb"):
        check_parameters("06_analysis", {"NESTEROV": True})  # it trains nothing: the recipe is not its


def test_a_recipe_name_an_earlier_run_left_in_the_kernel_is_not_taken():
    cell = parameters_cell("05_custom_resnet")
    check = 'run = training_run("custom_resnet", globals())\n'
    namespace = {**declared_parameters("05_custom_resnet"), "NESTEROV": True}
    namespace["In"] = ["", cell, "NESTEROV = True\n", check]
    assert check_parameters("05_custom_resnet", namespace)["NESTEROV"] is True
    namespace["In"] = ["", cell, "NESTEROV = True\n", check, cell, check]  # the parameters cell ran again since
    assert "NESTEROV" not in check_parameters("05_custom_resnet", namespace)


@pytest.mark.parametrize("notebook, name, suggestion", [
    ("06_analysis", "FIGURE_DIR", "FIGURES_DIR"), ("06_analysis", "results_dir", "RESULTS_DIR"),
    ("06_analysis", "EPOCHS", None), ("04_custom_resnet_architecture", "FIGURE_DIR", "FIGURES_DIR"),
])
def test_the_analysis_notebooks_refuse_undeclared_names(notebook, name, suggestion):
    history = ["", 'RESULTS_DIR = "results"\nFIGURES_DIR = "figures"\n', f"{name} = 'x'\n",
               f'check_parameters("{notebook}", globals())']
    with pytest.raises(ConfigError, match=f"unknown parameter '{name}' in notebooks/{notebook}.ipynb") as error:
        check_parameters(notebook, {"In": history, name: "x"})
    assert (f"did you mean {suggestion}?" if suggestion else "known: ") in str(error.value)
    assert check_parameters("06_analysis", {"In": history[:2] + history[3:], "RESULTS_DIR": "r"}) == {"RESULTS_DIR": "r"}


def test_declared_parameters_read_the_parameters_cell_literals_only(tmp_path):
    notebook = tmp_path / "x.ipynb"
    cell = {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": ["EPOCHS = 3\n", "LR = 2 * 0.1\n"]}
    notebook.write_text(json.dumps({"cells": [cell]}))
    with pytest.raises(ConfigError, match=r"x.ipynb: the parameters cell must hold `NAME = literal` lines only, "
                                          r"not 'LR = 2 \* 0.1'"):
        declared_parameters(notebook)
    cell["source"] = ["EPOCHS = 3  # a comment\n", "SUBSET = [10, 20]\n"]
    notebook.write_text(json.dumps({"cells": [cell]}))
    assert declared_parameters(notebook) == {"EPOCHS": 3, "SUBSET": [10, 20]}


def test_device_given_as_a_number_is_refused_in_one_line(fake_data_dir):
    with pytest.raises(DeviceError, match="DEVICE must be one of auto, cuda, mps, cpu .* as text, got 1; "
                                          "for GPU 1, write cuda:1"):
        training_run("dnn", {"DEVICE": 1, "DATA_DIR": str(fake_data_dir)})


def test_a_model_option_the_model_does_not_take_is_refused():
    with pytest.raises(ConfigError, match="the dnn model takes no option 'dropout'; its options are hidden, "):
        TrainConfig.for_model("dnn", model_options={"dropout": 0.1})
    assert TrainConfig.for_model("cnn", model_options={"dropout": 0.1}).model_options == {"dropout": 0.1}


@pytest.mark.slow
def test_in_a_kernel_a_fixed_typo_runs_without_a_restart(fake_data_dir):
    """JupyterLab's case, in a real IPython kernel: the parameters cell with EPOCH = 3, the check refuses
    it; the cell fixed to EPOCHS = 3 and run again, the check passes, though EPOCH is still defined."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3")
    try:
        def run(code: str) -> str:
            reply = client.execute_interactive(code, timeout=120, output_hook=lambda msg: None)
            content = reply["content"]
            return content["status"] + (f": {content['ename']}: {content['evalue']}" if content["status"] == "error" else "")

        parameters = parameters_cell("01_dnn").replace("DATA_DIR = None", f"DATA_DIR = {str(fake_data_dir)!r}")
        parameters = parameters.replace('DEVICE = "auto"', 'DEVICE = "cpu"')
        assert run(parameters.replace("EPOCHS = 100", "EPOCH = 3")) == "ok"
        assert run(CHECK_01).startswith("error: ConfigError: unknown parameter 'EPOCH'")
        assert run(parameters.replace("EPOCHS = 100", "EPOCHS = 3")) == "ok"
        assert run(CHECK_01) == "ok"
        assert run("assert EPOCH == 3 and run.config.epochs == 3") == "ok"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
