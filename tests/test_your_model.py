"""A model of your own: defined here, in the test file, trained by the engine, resumed exactly, never mixed up."""

from __future__ import annotations

import json

import nbformat
import papermill as pm
import pytest
import torch
from torch import nn

from cifar_helpers.core.paths import REPO_ROOT
from cifar_helpers.engine.config import ConfigError, TrainConfig
from cifar_helpers.engine.parameters import declared_parameters, names_set, parameters_cell
from cifar_helpers.engine.train import train_model
from cifar_helpers.engine.your_model import NOTEBOOK, your_model_config, your_model_run
from cifar_helpers.models.your_model import YourModelError, check_outputs, describe_model, your_model_name
from cifar_helpers.report.chapter import trained_alike, your_model_comparison
from cifar_helpers.report.figures import accuracy_curves, fig1_loss_curves
from cifar_helpers.report.results import formatted_table1, load_results, table1
from cifar_helpers.workbook import run_all


class TinyNet(nn.Module):
    """A model the package knows nothing of: one convolution with batch norm, pooled, then a linear layer."""

    def __init__(self, width: int = 8, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                      nn.ReLU(), nn.MaxPool2d(4))
        self.classifier = nn.Linear(width * 8 * 8, classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def tiny(width: int = 8, seed: int = 23) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(width)


def without_timings(history):
    return [{k: v for k, v in row.items() if not k.endswith("_seconds")} for row in history]


def train(cfg, data, folder, model, **kwargs):
    lines = []
    record = train_model(cfg, data, device="cpu", results_dir=folder / "results", checkpoint_dir=folder / "ckpt",
                         log=lines.append, model=model, **kwargs)
    return record, lines


# ----------------------------------------------------------------------------- names and descriptions

@pytest.mark.parametrize("label, name", [("Wide CNN", "wide_cnn"), ("TinyNet", "tinynet"), ("2x CNN!", "model_2x_cnn"),
                                         ("  ResNet (no BN) ", "resnet_no_bn")])
def test_a_label_names_the_models_files(label, name):
    assert your_model_name(label) == name


@pytest.mark.parametrize("label, message", [
    ("CNN", "MODEL_LABEL 'CNN' would write over the report's CNN (results/cnn.json): give your model another name"),
    ("custom resnet", "would write over the report's Custom ResNet"),
    (None, "MODEL_LABEL must name your model in letters, such as 'Wide CNN'; got None"),
    ("42", "MODEL_LABEL must name your model in letters"),
])
def test_a_label_that_cannot_name_files_is_refused_in_one_line(label, message):
    with pytest.raises(YourModelError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        your_model_name(label)
    assert "\n" not in str(error.value)


def test_the_description_is_the_label_the_parameter_count_and_the_architectures_text():
    model = tiny()
    described = describe_model(model)
    assert described.label == "TinyNet" and describe_model(model, "Tiny").label == "Tiny"  # the class name by default
    assert described.num_parameters == sum(p.numel() for p in model.parameters()) == 3*8*9 + 2*8 + 8*64*10 + 10
    assert described.text == str(model) and "Conv2d(3, 8, kernel_size=(3, 3)" in described.text
    assert described.architecture == {"class": "TinyNet", "num_parameters": described.num_parameters,
                                      "text_hash": described.text_hash}
    assert describe_model(tiny(seed=1)).architecture == described.architecture  # the weights are not the network
    assert describe_model(tiny(width=16)).text_hash != described.text_hash


class FiveClasses(TinyNet):
    def __init__(self):
        super().__init__(classes=5)


class Flat(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 32, 10)  # forgets the image's height: the shapes do not fit

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("model, message", [
    (FiveClasses(), "Mine gives outputs of shape 2×5 for 2 images (2×3×32×32); it must give 2×10: one score per "
                    "CIFAR-10 class for each image"),
    (Flat(), "Mine cannot take a batch of CIFAR-10 images (2×3×32×32): RuntimeError: mat1 and mat2 shapes cannot "
             "be multiplied (2x3072 and 96x10)"),
    ("TinyNet", "model= must be a torch.nn.Module (your network), got str"),
])
def test_a_model_without_ten_outputs_on_a_cifar_batch_is_refused_in_one_line(model, message):
    with pytest.raises(YourModelError) as error:
        check_outputs(model, "Mine")
    assert str(error.value) == message


def test_the_output_check_leaves_the_model_as_it_was():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    check_outputs(model, "Tiny")
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ----------------------------------------------------------------------------- configs

def test_your_config_takes_a_report_protocol_and_names_the_files():
    lecture = your_model_config("Wide CNN")
    assert lecture.model == "wide_cnn" and lecture.model_options == {}
    assert {k: v for k, v in lecture.to_dict().items() if k not in ("model", "model_options")} == \
        {k: v for k, v in TrainConfig.for_model("cnn").to_dict().items() if k not in ("model", "model_options")}
    custom = your_model_config("Wide CNN", "custom_resnet", epochs=5)
    assert (custom.optimizer, custom.scheduler, custom.patience, custom.augment, custom.epochs) == \
        ("adam", "step", 15, True, 5)
    with pytest.raises(ConfigError, match="PROTOCOL must be 'lecture' .* or 'custom_resnet' .*, got 'fast'"):
        your_model_config("Wide CNN", "fast")
    with pytest.raises(ConfigError, match="LR must be a positive number"):
        your_model_config("Wide CNN", lr=-1)


def test_a_model_and_a_config_that_do_not_go_together_are_refused_before_any_work(fake_data, tmp_path):
    with pytest.raises(ConfigError, match="config is the report's 'cnn', whose files it would overwrite"):
        train(TrainConfig.for_model("cnn", epochs=1), fake_data, tmp_path, tiny())
    with pytest.raises(ConfigError, match="'tinynet' is none of the report's models .*model=<nn.Module>"):
        train(your_model_config("TinyNet", epochs=1), fake_data, tmp_path, None)
    with pytest.raises(YourModelError, match="gives outputs of shape 2×5"):
        train(your_model_config("Five", epochs=1), fake_data, tmp_path, FiveClasses())
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "results").exists()


# ----------------------------------------------------------------------------- training, resuming, changing it

@pytest.fixture(scope="module")
def uninterrupted(fake_data, tmp_path_factory):
    """Three epochs of TinyNet in one go."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    record, _ = train(your_model_config("Tiny Net", epochs=3), fake_data, folder, tiny(), label="Tiny Net")
    return record, folder


def test_the_record_shows_the_model_by_its_label(uninterrupted):
    record, folder = uninterrupted
    assert json.loads((folder / "results" / "tiny_net.json").read_text()) == record
    described = describe_model(tiny(), "Tiny Net")
    assert record["model"] == "tiny_net" and record["label"] == "Tiny Net" and record["complete"] is True
    assert record["num_parameters"] == described.num_parameters and record["architecture"] == described.architecture
    assert record["architecture_text"] == str(tiny()) and len(record["history"]) == 3
    assert record["params"]["optimizer"] == "sgd" and record["predictions"]["epoch"] >= 1


def test_the_model_given_is_not_trained_itself_so_the_same_call_starts_from_the_same_weights(fake_data, tmp_path):
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(your_model_config("Tiny Net", epochs=1), fake_data, tmp_path, model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_an_interrupted_run_resumes_to_the_uninterrupted_history(uninterrupted, fake_data, tmp_path):
    cfg = your_model_config("Tiny Net", epochs=3)
    partial, _ = train(cfg, fake_data, tmp_path, tiny(), label="Tiny Net", stop_after=1)
    assert partial["complete"] is False and len(partial["history"]) == 1
    # a new instance, seeded otherwise: the checkpoint's weights are what go on
    resumed, lines = train(cfg, fake_data, tmp_path, tiny(seed=5), label="Tiny Net")
    assert any(line.startswith("Resuming from") and "after epoch 1" in line for line in lines)
    assert without_timings(resumed["history"]) == without_timings(uninterrupted[0]["history"])
    assert resumed["predictions"] == uninterrupted[0]["predictions"]


def test_a_changed_model_never_resumes_the_old_checkpoint_which_is_kept_aside(fake_data, tmp_path):
    cfg = your_model_config("Tiny Net", epochs=2)
    first, _ = train(cfg, fake_data, tmp_path, tiny(), label="Tiny Net", stop_after=1)
    wider, lines = train(cfg, fake_data, tmp_path, tiny(width=16), label="Tiny Net")
    said = [line for line in lines if line.startswith("The checkpoint in")]
    old_hash, new_hash = first["architecture"]["text_hash"], wider["architecture"]["text_hash"]
    assert said == [f"The checkpoint in {tmp_path}/ckpt/tiny_net was made for another Tiny Net network "
                    f"(num_parameters: {first['num_parameters']} -> {wider['num_parameters']}; text_hash: "
                    f"'{old_hash}' -> '{new_hash}': its definition changed since); kept it as "
                    f"last.stale-{first['fingerprint']}-{old_hash}.pt, best.stale-{first['fingerprint']}-{old_hash}.pt "
                    "and starting fresh."]
    assert not any(line.startswith("Resuming") for line in lines) and len(wider["history"]) == 2
    assert (tmp_path / "ckpt" / "tiny_net" / f"last.stale-{first['fingerprint']}-{old_hash}.pt").is_file()


def test_a_finished_run_is_shown_from_its_record_only_for_the_same_model(uninterrupted, fake_data, tmp_path):
    record, folder = uninterrupted
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "tiny_net.json").write_text(json.dumps(record))
    cfg = your_model_config("Tiny Net", epochs=3)
    shown, lines = train(cfg, fake_data, tmp_path, tiny(), label="Tiny Net")
    assert shown == record and "holds this run" in lines[0]
    other, lines = train(cfg, fake_data, tmp_path, tiny(width=4), label="Tiny Net")  # trained, not shown
    assert not any("holds this run" in line for line in lines) and other["architecture"] != record["architecture"]


# ----------------------------------------------------------------------------- notebook 07's parameters

def test_notebook_07_declares_the_training_notebooks_names_with_none_for_the_protocols_values():
    declared = declared_parameters(NOTEBOOK)
    for name in ("SEED", "EPOCHS", "BATCH_SIZE", "LR", "WEIGHT_DECAY", "SUBSET", "DATA_DIR", "DEVICE", "RESULTS_DIR",
                 "CHECKPOINT_DIR", "STOP_AFTER", "AMP", "DETERMINISTIC", "STEP_MODE", "EVAL_BATCH_SIZE",
                 "FLUSH_DENORMALS"):
        assert name in declared, name
    assert declared["MODEL_LABEL"] == "Wide CNN" and declared["PROTOCOL"] == "lecture"
    assert declared["SEED"] == TrainConfig.for_model("cnn").seed
    assert all(declared[name] is None for name in ("EPOCHS", "BATCH_SIZE", "OPTIMIZER", "LR", "PATIENCE", "AUGMENT"))


def test_notebook_07s_parameters_make_its_run(fake_data_dir, tmp_path):
    namespace = {**declared_parameters(NOTEBOOK), "DATA_DIR": str(fake_data_dir), "RESULTS_DIR": str(tmp_path),
                 "PROTOCOL": "custom_resnet", "EPOCHS": 4, "DEVICE": "cpu"}
    run = your_model_run(namespace)
    assert run.config == your_model_config("Wide CNN", "custom_resnet", epochs=4)  # None: the protocol's value
    assert run.train_kwargs()["label"] == "Wide CNN" and run.results_dir == tmp_path
    with pytest.raises(YourModelError, match="MODEL_LABEL 'ResNet' would write over the report's ResNet"):
        your_model_run({**namespace, "MODEL_LABEL": "ResNet"})
    with pytest.raises(ConfigError, match="unknown parameter 'DROPOUT' in notebooks/07_your_model.ipynb"):
        your_model_run({**namespace, "DROPOUT": 0.2})


def test_07s_check_cell_run_again_still_sees_papermills_lowercase_name():
    """papermill's `-p epochs 1` sets a lowercase name; the check cell, run twice, must still refuse it."""
    check = "run = your_model_run(globals())\n"
    history = ["", parameters_cell(NOTEBOOK), "# Parameters\nepochs = 1\n", check, check]
    assert "epochs" in names_set(history, parameters_cell(NOTEBOOK))


# ----------------------------------------------------------------------------- the chapter's closing words

def alike(record, model, accuracies, **params):
    """`record` as if another network had trained alike, with these test accuracies."""
    history = [{**row, "test_acc": acc} for row, acc in zip(record["history"], accuracies)]
    return {**record, "model": model, "history": history, "params": {**record["params"], "model": model, **params}}


def test_the_comparison_takes_only_runs_trained_alike(uninterrupted):
    record = uninterrupted[0]
    ours = {**record, "history": [{**row, "test_acc": acc} for row, acc in zip(record["history"], (0.2, 0.5, 0.4))]}
    cnn, dnn = alike(record, "cnn", (0.3, 0.45, 0.1)), alike(record, "dnn", (0.6, 0.1, 0.1))
    resnet = alike(record, "resnet", (0.9, 0.9, 0.9), epochs=100)  # another protocol: not compared
    assert trained_alike(ours, cnn) and not trained_alike(ours, resnet)
    assert not trained_alike(ours, {**cnn, "data_digest": "other data"})
    text = your_model_comparison(ours, {"dnn": dnn, "cnn": cnn, "resnet": resnet, "tiny_net": ours}).data
    assert text.startswith(f"**Tiny Net** ({record['num_parameters']:,} parameters, 3 epochs): best test accuracy "
                           "50.00% at epoch 2, lowest test loss")
    assert text.endswith("Trained alike (the same parameters and data, another network): DNN 60.00% (Tiny Net "
                         "-10.00 points), CNN 45.00% (Tiny Net +5.00 points).")
    alone = your_model_comparison(ours, {"resnet": resnet, "tiny_net": ours}).data
    assert alone.endswith("No other run here trained alike (the same parameters and data, another network), so no "
                          "comparison of best values would be fair; Table 1 lists them all.")


# ----------------------------------------------------------------------------- beside the report's models

def test_a_model_defined_only_here_shows_in_table_1_fig_1_and_the_accuracy_figure(uninterrupted, fake_data):
    record, folder = uninterrupted
    train_model(TrainConfig.for_model("dnn", epochs=2), fake_data, device="cpu", results_dir=folder / "results",
                checkpoint_dir=folder / "ckpt", log=lambda line: None)
    results = load_results(folder / "results")
    assert list(results) == ["dnn", "tiny_net"]  # the report's models first
    table = formatted_table1(table1(results)).set_index("Model")
    assert list(table.index) == ["DNN", "Tiny Net"]
    assert table.loc["Tiny Net", "Parameters"] == f"{record['num_parameters']:,}"
    assert [table.loc["Tiny Net", column] for column in ("Report Loss", "Report Acc (%)", "Δ Acc (pts)")] == ["-"] * 3
    assert table.loc["DNN", "Report Acc (%)"] == "52.64"
    titles = [ax.get_title() for ax in fig1_loss_curves(results).axes]
    assert titles[0].startswith("(A) DNN") and titles[3].startswith("(D) Tiny Net\nlowest test loss")
    legend = [text.get_text() for text in accuracy_curves(results).legends[0].get_texts()]
    assert [entry.split(" (best")[0] for entry in legend] == ["DNN", "Tiny Net"]


# ----------------------------------------------------------------------------- notebook 07 itself

def run_07(tmp_path, name, **params):
    out = tmp_path / f"{name}.ipynb"
    pm.execute_notebook(str(REPO_ROOT / "notebooks" / f"{NOTEBOOK}.ipynb"), str(out), parameters=params,
                        kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    return "".join(output.get("text", "") for cell in nbformat.read(out, 4).cells for output in cell.get("outputs", []))


@pytest.mark.slow
def test_notebook_07_trains_the_model_of_its_cell_and_resumes_it_as_the_library_trains_it(fake_data_dir, fake_data,
                                                                                          tmp_path):
    tiny = dict(DATA_DIR=str(fake_data_dir), DEVICE="cpu", EPOCHS=2, SUBSET=[100, 50],
                RESULTS_DIR=str(tmp_path / "results"), CHECKPOINT_DIR=str(tmp_path / "ckpt"))
    run_07(tmp_path, "first", STOP_AFTER=1, **tiny)
    assert len(json.loads((tmp_path / "results" / "wide_cnn.json").read_text())["history"]) == 1
    printed = run_07(tmp_path, "resumed", **tiny)
    assert "Resuming from" in printed and "after epoch 1" in printed
    record = json.loads((tmp_path / "results" / "wide_cnn.json").read_text())
    assert record["complete"] is True and record["label"] == "Wide CNN" and "WideCNN(" in record["architecture_text"]
    # the library, on the model the notebook's cell defines
    cell = next(c.source for c in nbformat.read(REPO_ROOT / "notebooks" / f"{NOTEBOOK}.ipynb", 4).cells
                if "class WideCNN" in c.source)
    namespace = {"SEED": 23}
    exec(cell, namespace)
    direct, _ = train(your_model_config("Wide CNN", epochs=2, subset=[100, 50]), fake_data, tmp_path / "library",
                      namespace["model"], label="Wide CNN")
    assert without_timings(direct["history"]) == without_timings(record["history"])
    assert direct["architecture"] == record["architecture"]


# ----------------------------------------------------------------------------- make run

def test_make_run_checks_07s_values_before_any_notebook(tmp_path):
    declared = declared_parameters(NOTEBOOK)
    assert run_all.Job(NOTEBOOK, None, {**declared, "MODEL_LABEL": "My Net"}).trains == "my_net"
    for bad, message in (({"PROTOCOL": "fast"}, "07_your_model: PROTOCOL must be 'lecture'"),
                         ({"MODEL_LABEL": "DNN"}, "07_your_model: MODEL_LABEL 'DNN' would write over the report's DNN"),
                         ({"EPOCHS": 0}, "07_your_model: EPOCHS must be a whole number >= 1")):
        with pytest.raises(run_all.RunError, match=message):
            run_all.check_values([run_all.Job(NOTEBOOK, None, {**declared, **bad})])


def test_force_retrains_your_model_from_scratch_keeping_its_old_record_aside(tmp_path, monkeypatch):
    file = tmp_path / "p.yaml"
    file.write_text(f"workbook: {{only: '07'}}\nDEVICE: cpu\nRESULTS_DIR: {tmp_path}/results\n"
                    f"CHECKPOINT_DIR: {tmp_path}/ckpt\nnotebooks:\n  07_your_model: {{MODEL_LABEL: My Net}}\n")
    (tmp_path / "ckpt" / "my_net").mkdir(parents=True)
    (tmp_path / "ckpt" / "my_net" / "last.pt").write_text("an earlier run")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "my_net.json").write_text("{}")
    ran = []
    monkeypatch.setattr(run_all, "run_notebook", lambda notebook, given, *a: ran.append((notebook, given)))
    assert run_all.main(["--params", str(file), "--force", "--executed-dir", str(tmp_path / "executed")]) == 0
    assert ran == [("07_your_model", {"DEVICE": "cpu", "RESULTS_DIR": f"{tmp_path}/results",
                                      "CHECKPOINT_DIR": f"{tmp_path}/ckpt", "MODEL_LABEL": "My Net"})]
    assert not (tmp_path / "ckpt" / "my_net" / "last.pt").exists()
    assert (tmp_path / "results" / ".my_net.json.before-force").read_text() == "{}"
