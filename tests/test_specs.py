"""One spec per model: what the rest of the workbook reads, and the run records it must leave as they were."""

from __future__ import annotations

import inspect
import json

import pytest
import torch

from cifar_helpers.core.paths import REPO_ROOT
from cifar_helpers.engine.config import PROTOCOLS, TrainConfig, normalize_subset
from cifar_helpers.models import architecture, build_model, model_options
from cifar_helpers.models.specs import LECTURE_MODELS, MODEL_NAMES, NOTEBOOKS, SPECS, in_model_order

REFERENCE_RESULTS = sorted(REPO_ROOT.glob("reference/*/results/*.json"))
FULL_DATA = (50_000, 10_000)  # CIFAR-10's train and test images: what a run without SUBSET reads


def test_the_specs_are_the_reports_four_models_in_order():
    assert MODEL_NAMES == ("dnn", "cnn", "resnet", "custom_resnet")
    assert [spec.label for spec in SPECS.values()] == ["DNN", "CNN", "ResNet", "Custom ResNet"]
    assert LECTURE_MODELS == ("dnn", "cnn", "resnet")
    assert NOTEBOOKS == (("01_dnn", "dnn"), ("02_cnn", "cnn"), ("03_resnet", "resnet"),
                         ("04_custom_resnet_architecture", None), ("05_custom_resnet", "custom_resnet"),
                         ("07_your_model", None), ("06_analysis", None))  # 06 shows every other's results
    for name, spec in SPECS.items():
        assert spec.name == name and (REPO_ROOT / spec.notebook_path).is_file()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_models_options_are_its_class_defaults_stated_once(name):
    spec = SPECS[name]
    assert inspect.isclass(spec.factory) and isinstance(build_model(name), spec.factory)
    defaults = {key: p.default for key, p in inspect.signature(spec.factory).parameters.items()}
    assert model_options(name) == defaults and inspect.Parameter.empty not in defaults.values()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_recorded_architecture_builds_the_same_network(name):
    """Results files hold the options as JSON has them (lists, not tuples): they build the same weights."""
    torch.manual_seed(23)
    direct = build_model(name).state_dict()
    torch.manual_seed(23)
    recorded = build_model(name, **architecture(name)).state_dict()
    assert direct.keys() == recorded.keys() and all(torch.equal(direct[k], recorded[k]) for k in direct)


def test_every_spec_names_a_protocol_the_engine_knows():
    assert {spec.protocol for spec in SPECS.values()} == set(PROTOCOLS)
    assert TrainConfig.for_model("resnet").to_dict() == {**TrainConfig.for_model("dnn").to_dict(), "model": "resnet"}
    custom = TrainConfig.for_model("custom_resnet")
    assert (custom.optimizer, custom.epochs, custom.model_options) == ("adam", 300, {"dropout": 0.1})


def test_further_models_come_after_the_reports_sorted():
    assert in_model_order(["zeta", "custom_resnet", "alpha", "dnn"]) == ["dnn", "custom_resnet", "alpha", "zeta"]


@pytest.mark.parametrize("path", REFERENCE_RESULTS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_committed_runs_keep_their_fingerprint_and_architecture(path):
    """The committed reference runs: recomputed from the parameters they record, a run's fingerprint is
    what the file says, and its recorded network is stated in the options the model takes today, in
    their order. The CPU runs are of today's defaults, so a re-run skips or resumes them rather than
    starting afresh (reference/gpu-jpeg's ResNet is the former R1, with batch norm)."""
    record = json.loads(path.read_text(encoding="utf-8"))
    params = dict(record["params"], subset=normalize_subset(record["params"]["subset"]))
    config = TrainConfig(**params)
    n_train, n_test = params["subset"] or FULL_DATA
    context = {"device": record["device"], "data_digest": record["data_digest"], "n_train": n_train, "n_test": n_test}
    assert config.fingerprint(**context) == record["fingerprint"]
    recorded = record["architecture"]
    assert json.dumps(architecture(config.model, **recorded)) == json.dumps(recorded)  # the same keys, in order
    if path.parent.parent.name == "cpu-jpeg":
        assert json.dumps(config.architecture()) == json.dumps(recorded)


