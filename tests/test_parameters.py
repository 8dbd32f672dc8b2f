"""Notebook parameters: one mapping to TrainConfig, and no silently ignored name."""

from __future__ import annotations

import pytest

from cifar_helpers.catalog import NOTEBOOKS
from cifar_helpers.config import ConfigError, TrainConfig
from cifar_helpers.display import protocol_table
from cifar_helpers.models import model_options
from cifar_helpers.parameters import (
    KNOWN_PARAMETERS,
    MODEL_PARAMETERS,
    PROTOCOL_PARAMETERS,
    training_run,
    unknown_parameter_message,
)
from cifar_helpers.run_all import NOTEBOOK_DIR, declared_parameters


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
    with pytest.raises(ConfigError, match=f"unknown parameter '{typo}'") as error:
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
    custom = protocol_table(training_run("custom_resnet", {"DATA_DIR": str(fake_data_dir), "SUBSET": 100}).config)
    assert custom.loc["schedule", "setting"] == "StepLR: × 0.1 every 30 epochs"
    assert custom.loc["epochs", "setting"].startswith("at most 300, early stopping after 15")
    assert custom.loc["data", "setting"] == "100 train / 100 test images"
    assert custom.loc["dropout", "setting"].startswith("0.1")


@pytest.mark.parametrize("notebook, model", [(nb, m) for nb, m in NOTEBOOKS if m])
def test_each_notebooks_defaults_are_the_packages_protocol(notebook, model):
    """One home for each default: the notebooks' literals must equal TrainConfig's protocols."""
    declared = declared_parameters(NOTEBOOK_DIR / f"{notebook}.ipynb")
    config = TrainConfig.for_model(model)
    for name, field in PROTOCOL_PARAMETERS.items():
        if name in declared:
            assert declared[name] == getattr(config, field), name
    for name, option in MODEL_PARAMETERS.items():
        if name in declared:
            assert declared[name] == config.model_options[option] == model_options(model)[option], name
    assert set(declared) <= KNOWN_PARAMETERS
