"""The run record: one identity answers whether a results file or a checkpoint is this run, committed runs included."""

from __future__ import annotations

import json

import pytest
from test_results import make_result

from cifar_helpers.core.paths import REPO_ROOT
from cifar_helpers.engine import checkpoint
from cifar_helpers.engine.config import TrainConfig
from cifar_helpers.engine.parameters import MODEL_PARAMETERS, PROTOCOL_PARAMETERS, declared_parameters, training_config
from cifar_helpers.engine.record import (RunIdentity, best_points, build_record, finished_run, made_otherwise,
                                         recorded_run, validate_result)
from cifar_helpers.models import architecture, build_model
from cifar_helpers.models.specs import SPECS

REFERENCE_RESULTS = sorted((REPO_ROOT / "reference").glob("*-jpeg/results/*.json"))
JPEG_COPY = dict(n_train=50_000, n_test=10_000)  # the whole CIFAR-10, as the reference runs read it
# Runs of a network whose factory default changed since: gpu-jpeg's ResNet is the former 16-32-64 one with
# batch norm (docs/lecture-models.md), so today's notebook 03 trains anew instead of showing it.
FORMER_NETWORKS = {"gpu-jpeg/resnet"}
# Long CPU runs travel between machines as committed checkpoints: the notebooks' in reference/cpu-jpeg/resume/<model>/,
# the Custom ResNet study's in reference/custom-resnet/resume/<candidate>/ (their READMEs say how to go on).
RESUMES = sorted(REPO_ROOT.glob(f"reference/*/resume/*/{checkpoint.LAST}"))
JPEG_DIGEST = json.loads((REPO_ROOT / "reference/cpu-jpeg/results/dnn.json").read_text())["data_digest"]


def test_the_identity_covers_parameters_device_data_and_the_part_of_it_that_trains():
    cfg = TrainConfig.for_model("dnn")
    run = RunIdentity.of(cfg, "cpu", "d1", 400, 200)
    assert run.architecture == architecture("dnn") and run.model == "dnn"
    assert run == RunIdentity.of(TrainConfig.for_model("dnn", eval_batch_size=10), "cpu", "d1", 400, 200)
    others = [RunIdentity.of(TrainConfig.for_model("dnn", lr=0.05), "cpu", "d1", 400, 200),
              RunIdentity.of(cfg, "cuda", "d1", 400, 200), RunIdentity.of(cfg, "cpu", "d2", 400, 200),
              RunIdentity.of(cfg, "cpu", "d1", 300, 200)]
    assert len({run.fingerprint, *(other.fingerprint for other in others)}) == 5
    # SUBSET picks the part that trains: the whole set's size no longer matters, the subset's does
    small = TrainConfig.for_model("dnn", subset=[100, 50])
    assert RunIdentity.of(small, "cpu", "d1", 400, 200) == RunIdentity.of(small, "cpu", "d1", 300, 100)


@pytest.mark.parametrize("path", REFERENCE_RESULTS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_every_committed_reference_run_keeps_its_fingerprint(path):
    """The fingerprint a reference run recorded is what today's code computes from its parameters, on the
    JPEG copy it read: a run resumed or shown from it is still the same run."""
    record = json.loads(path.read_text())
    assert validate_result(record, record["model"]) is None
    cfg = recorded_config(record["model"], record["params"])
    run = RunIdentity.of(cfg, record["device"], record["data_digest"], **JPEG_COPY)
    assert run.fingerprint == record["fingerprint"]
    if f"{path.parent.parent.name}/{path.stem}" in FORMER_NETWORKS:  # the same parameters, another network
        assert run.architecture != record["architecture"] and recorded_run(path, run) is None
    else:
        assert recorded_run(path, run) == record


def recorded_config(model: str, params: dict) -> TrainConfig:
    """The config a results file's `params` or a checkpoint's `config` were written from (both name the model)."""
    return TrainConfig.for_model(model, **{k: v for k, v in params.items() if k != "model"})


def notebook_defaults(notebook: str, model: str) -> TrainConfig:
    """The config a notebook's own parameters cell gives, untouched by any profile."""
    declared = declared_parameters(notebook)
    return training_config(model, {name: value for name, value in declared.items()
                                   if name in PROTOCOL_PARAMETERS or name in MODEL_PARAMETERS})


@pytest.mark.parametrize("path", RESUMES, ids=lambda p: f"{p.parents[2].name}/{p.parent.name}")
def test_every_committed_resume_checkpoint_still_resumes(path):
    """Today's code must go on from each: the run its parameters make on the JPEG copy is the checkpoint's, with
    the same network and weights; a notebook's (reference/cpu-jpeg/resume/<model>/) is that of the notebook's own
    defaults (the report's protocol, eager), so that resuming it as its README says continues that very run."""
    saved = checkpoint.load(path)
    cfg = recorded_config(saved["config"]["model"], saved["config"])
    run = RunIdentity.of(cfg, "cpu", JPEG_DIGEST, **JPEG_COPY)
    network = build_model(cfg.model, **cfg.model_options)
    assert made_otherwise(saved, run, cfg.to_dict(), network.state_dict()) is None
    network.load_state_dict(saved["model"])  # strict: every weight fits
    if path.parents[2].name == "cpu-jpeg":
        model = path.parent.name
        defaults = notebook_defaults(SPECS[model].notebook, model)
        assert defaults.step_mode == "eager" and saved["config"] == defaults.to_dict()


def test_a_checkpoint_made_otherwise_says_how():
    cfg = TrainConfig.for_model("dnn", lr=0.02)
    run = RunIdentity.of(cfg, "cpu", "d1", 400, 200)
    weights = build_model("dnn").state_dict()
    old = TrainConfig.for_model("dnn", lr=0.01)
    saved = {"fingerprint": RunIdentity.of(old, "cpu", "d1", 400, 200).fingerprint, "config": old.to_dict(),
             "architecture": architecture("dnn"), "model": weights}
    assert made_otherwise(saved, run, cfg.to_dict(), weights) == "with other parameters (lr: 0.01 -> 0.02)"
    moved = {**saved, "fingerprint": RunIdentity.of(cfg, "cuda", "d1", 400, 200).fingerprint, "config": cfg.to_dict()}
    assert made_otherwise(moved, run, cfg.to_dict(), weights) == ("with other parameters "
                                                                  "(same parameters, other device or data)")
    mine = {**saved, "fingerprint": run.fingerprint}
    assert made_otherwise(mine, run, cfg.to_dict(), weights) is None
    wider = {**mine, "architecture": architecture("dnn", hidden=(64,))}
    assert made_otherwise(wider, run, cfg.to_dict(), weights).startswith("for another dnn network (hidden: ")
    before_networks_were_recorded = {k: v for k, v in mine.items() if k != "architecture"}
    assert made_otherwise(before_networks_were_recorded, run, cfg.to_dict(), weights) is None
    other_weights = build_model("dnn", hidden=(64,)).state_dict()
    assert "its weights do not fit" in made_otherwise({**before_networks_were_recorded, "model": other_weights},
                                                      run, cfg.to_dict(), weights)


def test_a_results_file_is_this_run_only_when_valid_and_of_its_identity(tmp_path):
    run = RunIdentity.of(TrainConfig.for_model("dnn", epochs=2), "cpu", "d1", 400, 200)
    path = tmp_path / "dnn.json"
    record = {**make_result("dnn", epochs=2, best_loss_epoch=1), "fingerprint": run.fingerprint,
              "architecture": run.architecture}
    path.write_text(json.dumps(record))
    assert recorded_run(path, run) == record == finished_run(path, run)
    path.write_text(json.dumps({**record, "complete": False, "epochs_planned": 3}))
    assert recorded_run(path, run) is not None and finished_run(path, run) is None  # partial: this run, not done
    for other in ({**record, "fingerprint": "other"}, {**record, "architecture": architecture("dnn", hidden=(64,))},
                  {**record, "schema": 0}, {**record, "history": []}):
        path.write_text(json.dumps(other))
        assert recorded_run(path, run) is None
    path.write_text("{truncated")
    assert recorded_run(path, run) is None and recorded_run(tmp_path / "missing.json", run) is None


def test_the_record_built_is_valid_and_names_who_trained_it():
    cfg = TrainConfig.for_model("dnn", epochs=3)
    run = RunIdentity.of(cfg, "cpu", "d1", 400, 200)
    history = make_result("dnn", epochs=2, best_loss_epoch=2, best_acc_epoch=1)["history"]
    setup = {"device_name": "CPU", "cuda_fp32_math": None, "git_commit": "abc", "uncommitted_code": False,
             "versions": {"torch": "2"}}
    sessions = [{"first_epoch": 1, "last_epoch": 1, **setup}, {"first_epoch": 2, "last_epoch": 2, **setup,
                                                               "device_name": "GPU"}]
    record = build_record(cfg, run, num_parameters=7, device_type="cpu", data_source="generated data",
                          data_digest="d1", history=history, sessions=sessions, complete=False, stopped_early=False)
    assert validate_result(json.loads(json.dumps(record)), "dnn") is None
    assert (record["fingerprint"], record["architecture"], record["num_parameters"]) == (run.fingerprint,
                                                                                         run.architecture, 7)
    assert record["device_name"] == "CPU, epoch 1; GPU, epoch 2" and record["git_commit"] == "abc"
    assert record["complete"] is False and record["epochs_planned"] == 3 and record["stop_epoch"] == 2
    best = best_points(record)
    assert record["best_loss"] == {"epoch": 2, "test_loss": best.test_loss, "test_acc": best.acc_at_loss_epoch}
    assert record["best_acc"]["epoch"] == best.acc_epoch == 1
    assert list(record)[-1] == "predictions" and record["predictions"] is None
