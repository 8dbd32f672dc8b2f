"""The training engine: protocols, batches, determinism, resume, early stopping, errors."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from cifar_helpers.engine import checkpoint
from cifar_helpers import models
from cifar_helpers.data.batches import DeviceData, crop_flip, crop_flip_indices, epoch_generator, PAD
from cifar_helpers.engine.config import ConfigError, TrainConfig
from cifar_helpers.engine.device import DeviceError, cuda_fp32_math, device_name, select_device
from cifar_helpers.core.paths import require_data_dir
from cifar_helpers.engine.train import EarlyStopping, make_optimizer, train_model
from cifar_helpers.engine.your_model import your_model_config

TIMING_KEYS = ("train_seconds", "eval_seconds")


def without_timings(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


def quiet_train(cfg, data, tmp_path, name="run", **kwargs):
    lines = []
    record = train_model(cfg, data, device="cpu", results_dir=tmp_path / name / "results",
                         checkpoint_dir=tmp_path / name / "ckpt", log=lines.append, **kwargs)
    return record, lines


# ----------------------------------------------------------------------------- protocols and parameters

def test_report_protocols_are_the_defaults():
    lecture = TrainConfig.for_model("cnn")
    assert (lecture.optimizer, lecture.lr, lecture.momentum, lecture.weight_decay) == ("sgd", 0.1, 0.9, 5e-4)
    assert (lecture.batch_size, lecture.epochs, lecture.augment, lecture.patience, lecture.seed) == (64, 100, False, None, 23)
    custom = TrainConfig.for_model("custom_resnet")
    assert (custom.optimizer, custom.lr, custom.weight_decay, custom.batch_size) == ("adam", 1e-3, 5e-4, 64)
    assert (custom.epochs, custom.scheduler, custom.step_size, custom.gamma, custom.patience) == (300, "step", 30, 0.1, 15)
    assert custom.augment is True and custom.model_options == {"dropout": 0.1}
    # a record's params give the config back; an older record without a key gets the protocol's value
    assert TrainConfig.from_params(custom.to_dict()) == custom
    assert TrainConfig.from_params({"model": "custom_resnet", "lr": 2e-3}) == TrainConfig.for_model("custom_resnet", lr=2e-3)


def test_adams_l2_term_drives_a_weight_without_gradient_to_zero_and_adamw_only_decays_it():
    """The two readings of "Adam, weight decay 5e-4": with the loss giving a weight no gradient, Adam's L2 term
    is its whole gradient, which Adam normalises to a step of about lr; AdamW shrinks it by lr × decay a step."""
    weights = {}
    for optimizer in ("adam", "adamw"):
        layer = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.constant_(layer.weight, 0.01)
        step = make_optimizer(TrainConfig.for_model("custom_resnet", optimizer=optimizer), layer, torch.device("cpu"))
        assert type(step) is {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer]
        for _ in range(5):
            step.zero_grad()
            (0 * layer.weight).sum().backward()
            step.step()
        weights[optimizer] = layer.weight.item()
    assert weights["adam"] == pytest.approx(0.01 - 5 * 1e-3, abs=2e-4)  # about lr a step: half of it gone
    assert weights["adamw"] == pytest.approx(0.01 * (1 - 1e-3 * 5e-4) ** 5, rel=1e-6)


@pytest.mark.parametrize("overrides, message", [
    ({"epochs": 0}, "EPOCHS must be a whole number >= 1"),
    ({"batch_size": -1}, "BATCH_SIZE must be a whole number >= 1"),
    ({"batch_size": 64.0}, "BATCH_SIZE"),
    ({"lr": -0.1}, "LR must be a positive number"),
    ({"lr": float("nan")}, "LR must be a positive number"),
    ({"gamma": 0}, "GAMMA must be in (0, 1]"),
    ({"patience": 0}, "PATIENCE must be None"),
    ({"subset": 5}, "SUBSET must keep at least 10"),
    ({"subset": "all"}, "SUBSET must be None, an int or [n_train, n_test]"),
    ({"augment": "yes"}, "AUGMENT must be True or False"),
    ({"model_options": {"dropout": 1.5}}, "DROPOUT must be in [0, 1)"),
])
def test_nonsense_parameters_fail_with_a_clear_message(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        TrainConfig.for_model("custom_resnet", **overrides)


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown model 'vgg'.*dnn, cnn, resnet, custom_resnet"):
        TrainConfig.for_model("vgg")


def test_missing_data_dir_fails_before_training(tmp_path):
    with pytest.raises(FileNotFoundError, match="DATA_DIR=.*does not exist.*DATA_DIR=None"):
        require_data_dir(tmp_path / "nowhere")


def test_device_choice_and_errors():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in ("cuda", "mps", "cpu")
    with pytest.raises(DeviceError, match="DEVICE must be one of"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA GPU.*DEVICE='auto'"):
            select_device("cuda")


def test_fingerprint_changes_with_every_parameter():
    base = TrainConfig.for_model("dnn")
    assert base.fingerprint(device="cpu") == TrainConfig.for_model("dnn").fingerprint(device="cpu")
    assert base.fingerprint(device="cpu") != base.fingerprint(device="cuda")
    assert base.fingerprint() != TrainConfig.for_model("dnn", lr=0.05).fingerprint()
    # the OOM message's advice: a smaller evaluation batch resumes the same run
    assert base.fingerprint() == TrainConfig.for_model("dnn", eval_batch_size=100).fingerprint()


def test_a_setting_added_later_is_named_only_when_on_so_earlier_runs_keep_their_fingerprint():
    base = TrainConfig.for_model("custom_resnet")
    flushing = TrainConfig.for_model("custom_resnet", flush_denormals=True)
    assert "flush_denormals" not in base.to_dict() and flushing.to_dict()["flush_denormals"] is True
    assert TrainConfig.from_params(base.to_dict()) == base and TrainConfig.from_params(flushing.to_dict()) == flushing
    assert base.fingerprint(device="cpu") != flushing.fingerprint(device="cpu")
    with pytest.raises(ConfigError, match="FLUSH_DENORMALS must be True or False, got 1"):
        TrainConfig.for_model("dnn", flush_denormals=1)


# ----------------------------------------------------------------------------- batches

def small_device_data(n_train=100, n_test=30):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_train, 32, 32, 3), dtype=torch.uint8, generator=g)
    test = torch.randint(0, 256, (n_test, 32, 32, 3), dtype=torch.uint8, generator=g)
    labels = torch.arange(n_train) % 10
    return DeviceData(images, labels, test, torch.arange(n_test) % 10, (0.5,) * 3, (0.25,) * 3, torch.device("cpu"))


def test_an_epoch_sees_every_image_once_last_partial_batch_included():
    data = small_device_data()
    batches = list(data.train_batches(seed=23, epoch=1, batch_size=64, augment=False))
    assert [len(labels) for _, labels in batches] == [64, 36]
    seen = torch.cat([inputs for inputs, _ in batches])
    expected = data.normalize(data.train_images)
    # same images, in a new order: match each seen image to its source
    matches = (seen[:, None] == expected[None]).flatten(2).all(-1)
    assert matches.sum(1).tolist() == [1] * 100 and matches.sum(0).tolist() == [1] * 100


def test_shuffle_depends_only_on_seed_and_epoch():
    data = small_device_data()
    first = data.epoch_inputs(23, 1, augment=True)[1]
    assert torch.equal(first, small_device_data().epoch_inputs(23, 1, augment=True)[1])
    assert not torch.equal(first, data.epoch_inputs(23, 2, augment=True)[1])


def test_crop_flip_matches_a_per_image_reference():
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8, generator=g)
    padded = torch.nn.functional.pad(images, (PAD,) * 4)
    gen = epoch_generator(5, 3)
    rows, cols = crop_flip_indices(20, 32, gen)
    index = torch.randperm(20, generator=g)
    out = crop_flip(padded, index, rows, cols)
    for i in range(20):
        top, left = rows[i, 0].item(), min(cols[i, 0].item(), cols[i, -1].item())
        crop = padded[index[i], :, top:top + 32, left:left + 32]
        flipped = cols[i, 0] > cols[i, -1]
        assert torch.equal(out[i], crop.flip(-1) if flipped else crop)
    # offsets cover 0..2*PAD and both flip states appear
    assert rows[:, 0].min() >= 0 and rows[:, 0].max() <= 2 * PAD


def test_cuda_fp32_math_reads_the_tf32_switches():
    matmul = torch.backends.cuda.matmul.allow_tf32  # a property of torch's own module object: set and restore
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        with torch.backends.cudnn.flags(allow_tf32=True):
            assert cuda_fp32_math(torch.device("cuda")) == {"convolutions": "tf32", "matmul": "fp32"}
        with torch.backends.cudnn.flags(allow_tf32=False):
            assert cuda_fp32_math(torch.device("cuda")) == {"convolutions": "fp32", "matmul": "fp32"}
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
    assert cuda_fp32_math(torch.device("cpu")) is None


def test_normalization_is_mean_std():
    data = small_device_data()
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    assert torch.allclose(data.normalize(x), torch.full((1, 3, 2, 2), (1.0 - 0.5) / 0.25))


# ----------------------------------------------------------------------------- training

def test_training_records_everything_and_writes_results(fake_data, tmp_path):
    cfg = TrainConfig.for_model("cnn", epochs=2, lr=0.02)
    record, lines = quiet_train(cfg, fake_data, tmp_path)
    on_disk = json.loads((tmp_path / "run" / "results" / "cnn.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert len(record["history"]) == 2 and record["stop_epoch"] == 2 and record["complete"] is True
    for row in record["history"]:
        assert set(row) == {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr",
                            "train_seconds", "eval_seconds"}
        assert all(math.isfinite(v) for v in row.values())
    assert record["params"]["batch_size"] == 64 and record["num_parameters"] > 0
    assert record["device"] == "cpu" and record["versions"]["torch"] == torch.__version__
    assert record["cuda_fp32_math"] is None  # recorded for CUDA runs only
    assert "official python batches" in record["data_source"]
    assert record["best_loss"]["test_loss"] == min(r["test_loss"] for r in record["history"])
    assert record["restored_best"]["test_loss"] == record["best_loss"]["test_loss"]
    assert sum(line.startswith("epoch ") for line in lines) == 2
    assert not list((tmp_path / "run").rglob("*.tmp"))


class WithDenormals(torch.nn.Module):
    """A linear classifier beside 10,000 frozen weights that have decayed into denormal numbers."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3 * 32 * 32, 10)
        self.decayed = torch.nn.Parameter(torch.full((10_000,), 1e-39), requires_grad=False)

    def forward(self, x):
        return self.linear(x.flatten(1))


def test_a_cpu_run_says_once_when_its_weights_have_decayed_into_slow_denormal_numbers(fake_data, tmp_path):
    _, lines = quiet_train(your_model_config("With denormals", epochs=2), fake_data, tmp_path,
                           model=WithDenormals())
    notes = [line for line in lines if "denormal numbers" in line]
    assert len(notes) == 1 and lines[lines.index(notes[0]) - 1].startswith("epoch 1/2")  # after the first epoch
    assert notes[0].startswith("Note: 25% of the weights have decayed into denormal numbers")
    _, lines = quiet_train(your_model_config("Linear", epochs=2), fake_data, tmp_path,
                           model=torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)))
    assert not [line for line in lines if "denormal numbers" in line]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_flush_denormals_zeroes_decayed_weights_after_every_step_and_is_recorded(optimizer, fake_data, tmp_path):
    model = torch.nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1e-39, -3e-40, 0.5, 2e-38], [1.0, -1e-45, 0.75, -0.25]]))
    cfg = TrainConfig.for_model("dnn", optimizer=optimizer, lr=1e-30, weight_decay=0.0, flush_denormals=True)
    step = make_optimizer(cfg, model, torch.device("cpu"))
    model(torch.tensor([[0.0, 0.0, 1.0, 0.0]])).sum().backward()  # a gradient for the third column only
    step.step()
    expected = torch.tensor([[0.0, 0.0, 0.5, 2e-38], [1.0, 0.0, 0.75, -0.25]])  # 2e-38 is a normal number
    assert torch.equal(model.weight, expected)
    record, lines = quiet_train(your_model_config("With denormals", epochs=1, flush_denormals=True), fake_data,
                                tmp_path, model=WithDenormals())
    assert record["params"]["flush_denormals"] is True
    assert not [line for line in lines if "denormal numbers" in line]  # none left to note


def test_learns_the_fake_data_above_chance(fake_data, tmp_path):
    record, _ = quiet_train(TrainConfig.for_model("dnn", epochs=2, lr=0.01), fake_data, tmp_path)
    assert record["best_acc"]["test_acc"] > 0.3  # chance is 0.1


def test_two_runs_give_identical_histories(fake_data, tmp_path):
    cfg = TrainConfig.for_model("custom_resnet", epochs=2, subset=[120, 60], step_size=1)
    first, _ = quiet_train(cfg, fake_data, tmp_path, "a")
    second, _ = quiet_train(cfg, fake_data, tmp_path, "b")
    assert without_timings(first["history"]) == without_timings(second["history"])
    assert first["fingerprint"] == second["fingerprint"]


def test_early_stopping_counts_epochs_without_a_lower_test_loss():
    early = EarlyStopping(patience=3)
    losses = [3.0, 2.0, 2.5, 1.5, 1.6, 1.5, 1.8]
    stops = [early.update(epoch, loss) or early.stopped for epoch, loss in enumerate(losses, 1)]
    assert early.best_loss_epoch == 4 and early.best_loss == 1.5
    assert stops.index(True) == 0 and early.stopped  # improved at 1; stopped after epoch 7
    assert [EarlyStopping(3).stopped] == [False]


def test_early_stopping_on_a_plateau_stops_and_restores_best(fake_data, tmp_path):
    # lr far below float32 resolution: the weights never change, the test loss is flat.
    cfg = TrainConfig.for_model("dnn", epochs=20, lr=1e-30, weight_decay=0.0, patience=3)
    record, lines = quiet_train(cfg, fake_data, tmp_path)
    assert record["stopped_early"] is True
    assert record["best_loss"]["epoch"] == 1 and record["stop_epoch"] == 1 + 3
    assert record["restored_best"] == {"epoch": 1, "test_loss": record["best_loss"]["test_loss"],
                                       "test_acc": record["best_loss"]["test_acc"]}
    assert any("Early stopping after epoch 4" in line for line in lines)


def test_step_lr_changes_the_recorded_lr(fake_data, tmp_path):
    cfg = TrainConfig.for_model("custom_resnet", epochs=3, step_size=2, gamma=0.5, subset=[60, 20])
    record, _ = quiet_train(cfg, fake_data, tmp_path)
    assert [r["lr"] for r in record["history"]] == pytest.approx([1e-3, 1e-3, 5e-4])


def test_checkpoints_are_loadable_with_weights_only(fake_data, tmp_path):
    cfg = TrainConfig.for_model("dnn", epochs=1, lr=0.01)
    quiet_train(cfg, fake_data, tmp_path)
    folder = tmp_path / "run" / "ckpt" / "dnn"
    last = torch.load(folder / "last.pt", map_location="cpu", weights_only=True)
    assert {"model", "optimizer", "scheduler", "epoch", "early_stopping", "rng", "history", "fingerprint"} <= set(last)
    assert last["epoch"] == 1
    best = torch.load(folder / "best.pt", map_location="cpu", weights_only=True)
    assert set(best) == set(last["model"])


def test_a_checkpoint_with_other_parameters_is_kept_aside_not_mixed_in(fake_data, tmp_path):
    quiet_train(TrainConfig.for_model("dnn", epochs=1, lr=0.01), fake_data, tmp_path)
    other = TrainConfig.for_model("dnn", epochs=2, lr=0.02)
    record, lines = quiet_train(other, fake_data, tmp_path)
    assert any("made with other parameters" in line and "lr: 0.01 -> 0.02" in line for line in lines)
    assert list((tmp_path / "run" / "ckpt" / "dnn").glob("last.stale-*.pt"))
    fresh, _ = quiet_train(other, fake_data, tmp_path, "fresh")
    assert without_timings(record["history"]) == without_timings(fresh["history"])


def test_a_corrupt_checkpoint_says_what_to_do(fake_data, tmp_path):
    folder = tmp_path / "run" / "ckpt" / "dnn"
    folder.mkdir(parents=True)
    (folder / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="Delete it"):
        quiet_train(TrainConfig.for_model("dnn", epochs=1), fake_data, tmp_path)


RESUME_SCRIPT = textwrap.dedent("""
    import os, signal, sys, warnings
    from cifar_helpers.engine.config import TrainConfig
    from cifar_helpers.data.cifar10 import load_cifar10
    from cifar_helpers.engine.train import train_model
    warnings.simplefilter("ignore")
    data_dir, out, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cfg = TrainConfig.for_model("custom_resnet", epochs=4, step_size=2, subset=[100, 40])
    def maybe_die(epoch, row):
        if epoch == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # a real crash: no cleanup runs
    train_model(cfg, load_cifar10(data_dir, download=False), device="cpu", results_dir=out + "/results",
                checkpoint_dir=out + "/ckpt", on_epoch_end=maybe_die)
""")


def test_resume_after_a_kill_gives_the_uninterrupted_history(fake_data_dir, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(RESUME_SCRIPT)

    def run(out, kill_after):
        return subprocess.run([sys.executable, str(script), str(fake_data_dir), str(tmp_path / out), str(kill_after)],
                              capture_output=True, text=True, timeout=600)

    killed = run("resumed", kill_after=2)
    assert killed.returncode == -signal.SIGKILL
    partial = json.loads((tmp_path / "resumed" / "results" / "custom_resnet.json").read_text())
    assert partial["complete"] is False and len(partial["history"]) == 2 and partial["epochs_planned"] == 4
    resumed = run("resumed", kill_after=0)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming from" in resumed.stdout and "after epoch 2" in resumed.stdout
    straight = run("straight", kill_after=0)
    assert straight.returncode == 0, straight.stderr

    load = lambda out: json.loads((tmp_path / out / "results" / "custom_resnet.json").read_text())  # noqa: E731
    assert without_timings(load("resumed")["history"]) == without_timings(load("straight")["history"])
    assert len(load("resumed")["history"]) == 4


def test_stop_after_writes_a_partial_record_and_a_later_run_finishes_it(fake_data, tmp_path):
    cfg = TrainConfig.for_model("dnn", epochs=4, lr=0.01)
    partial, lines = quiet_train(cfg, fake_data, tmp_path, "split", stop_after=2)
    assert partial["complete"] is False and partial["epochs_planned"] == 4 and len(partial["history"]) == 2
    assert partial["restored_best"]["epoch"] == partial["best_loss"]["epoch"]  # the best so far
    assert partial["predictions"]["epoch"] == partial["best_loss"]["epoch"]
    assert any("Stopped after epoch 2 of 4 (STOP_AFTER=2)" in line and "partial" in line for line in lines)
    assert any(line.startswith("The best weights so far") for line in lines)
    on_disk = json.loads((tmp_path / "split" / "results" / "dnn.json").read_text())
    assert on_disk["complete"] is False and len(on_disk["history"]) == 2
    finished, lines = quiet_train(cfg, fake_data, tmp_path, "split")
    assert any("Resuming from" in line and "after epoch 2" in line for line in lines)
    straight, _ = quiet_train(cfg, fake_data, tmp_path, "straight")
    assert finished["complete"] is True and finished["fingerprint"] == partial["fingerprint"]
    assert without_timings(finished["history"]) == without_timings(straight["history"])


def test_a_resumed_or_finished_run_shows_its_whole_course_with_repo_relative_paths(fake_data, tmp_path):
    from cifar_helpers.core.paths import REPO_ROOT
    from cifar_helpers.core.progress import format_epoch

    cfg = TrainConfig.for_model("dnn", epochs=3, lr=0.01)
    ckpt = REPO_ROOT / "checkpoints" / f"test-course-{tmp_path.name}"
    try:
        first = train_model(cfg, fake_data, device="cpu", results_dir=tmp_path, checkpoint_dir=ckpt,
                            log=lambda line: None, stop_after=2)
        sessions = []
        for _ in range(2):  # the session that trains epoch 3, then one that only reads the finished run back
            lines = []
            record = train_model(cfg, fake_data, device="cpu", results_dir=tmp_path, checkpoint_dir=ckpt,
                                 log=lines.append)
            sessions.append(lines)
    finally:
        shutil.rmtree(ckpt, ignore_errors=True)
    # which device trains is said when one does: a run read back trains nothing
    assert [sum(line.startswith("Training on the CPU") for line in shown) for shown in sessions] == [1, 0]
    rows = record["history"]
    at = lines.index(f"Resuming from checkpoints/{ckpt.name}/dnn/last.pt after epoch 3; the epochs so far:")
    commit = (record["sessions"][0]["git_commit"] or "unknown commit")[:7]
    headings = [line for line in lines if ": trained on CPU" in line]  # one setup trained all three
    assert len(headings) == 1 and headings[0].startswith("epochs 1-3: trained on CPU (") and commit in headings[0]
    assert [line for line in lines[at:] if line.startswith("epoch ") and "/3" in line] == \
        [format_epoch(row, 3) for row in rows]  # every epoch's losses, accuracies and lr, in order
    assert first["history"][:2] == rows[:2]
    assert not any(str(REPO_ROOT) in line for line in lines)  # no machine's folders in committed outputs
    assert f"Results written to {tmp_path / 'dnn.json'}" in lines  # outside the repository: absolute


def test_the_record_names_the_setup_that_trained_each_epoch_not_the_one_that_reads_it_back(
        fake_data, tmp_path, monkeypatch):
    import cifar_helpers.engine.record as record  # which machine and code train: the record's session facts

    def train_as(machine, commit, **kwargs):
        monkeypatch.setattr(record, "device_name", lambda device: machine)
        monkeypatch.setattr(record, "code_revision", lambda: {"git_commit": commit, "uncommitted_code": False})
        return quiet_train(TrainConfig.for_model("dnn", epochs=3, lr=0.01), fake_data, tmp_path, **kwargs)[0]

    assert train_as("machine A", "aaa", stop_after=1)["device_name"] == "machine A"
    same_machine = train_as("machine A", "bbb", stop_after=2)
    assert same_machine["device_name"] == "machine A" and same_machine["git_commit"] == "bbb"
    finished = train_as("machine B", "ccc")
    assert finished["device_name"] == "machine A, epochs 1-2; machine B, epoch 3"
    assert finished["git_commit"] == "ccc" and finished["uncommitted_code"] is False
    assert [(s["first_epoch"], s["last_epoch"], s["git_commit"]) for s in finished["sessions"]] == [
        (1, 1, "aaa"), (2, 2, "bbb"), (3, 3, "ccc")]
    # A finished run executed again trains nothing: its record keeps who trained it.
    read_back = train_as("machine C", "ddd")
    for key in ("device_name", "git_commit", "sessions", "history"):
        assert read_back[key] == finished[key]


def test_a_cpu_run_names_the_processor_of_each_span_and_a_new_one_starts_a_new_span(
        fake_data, tmp_path, monkeypatch):
    import cifar_helpers.engine.record as record

    def train_on(processor, **kwargs):
        monkeypatch.setattr(record, "processor_name", lambda: processor)
        return quiet_train(TrainConfig.for_model("dnn", epochs=3, lr=0.01), fake_data, tmp_path, **kwargs)

    train_on("Intel(R) Xeon(R) Platinum", stop_after=1)
    train_on("Intel(R) Xeon(R) Platinum", stop_after=2)
    finished, lines = train_on("AMD EPYC")
    assert [(s["first_epoch"], s["last_epoch"], s["processor"]) for s in finished["sessions"]] == [
        (1, 2, "Intel(R) Xeon(R) Platinum"), (3, 3, "AMD EPYC")]
    _, lines = train_on("AMD EPYC")  # read back: the course says which processor trained which epochs
    cpu = device_name(torch.device("cpu"))
    headings = [line.split(", commit")[0] for line in lines if ": trained on CPU" in line]
    assert headings == [f"epochs 1-2: trained on {cpu}, Intel(R) Xeon(R) Platinum", f"epoch 3: trained on {cpu}, AMD EPYC"]


def test_processor_name_reads_the_model_linux_gives_and_falls_back_without_it(tmp_path):
    from cifar_helpers.engine.device import processor_name

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9554\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC 9554\n")
    assert processor_name(cpuinfo) == "AMD EPYC 9554"
    assert processor_name(tmp_path / "missing")  # another system: what Python can tell (x86_64 at the least)


def test_a_checkpoint_from_before_sessions_were_recorded_still_resumes(fake_data, tmp_path):
    cfg = TrainConfig.for_model("dnn", epochs=2, lr=0.01)
    quiet_train(cfg, fake_data, tmp_path, stop_after=1)
    last = tmp_path / "run" / "ckpt" / "dnn" / "last.pt"
    old = torch.load(last, map_location="cpu", weights_only=True)
    del old["sessions"], old["architecture"]
    torch.save(old, last)
    record, lines = quiet_train(cfg, fake_data, tmp_path)
    assert any("after epoch 1" in line for line in lines) and record["complete"] is True
    assert [(s["first_epoch"], s["last_epoch"]) for s in record["sessions"]] == [(1, 2)]  # attributed to this one


def narrower_dnn(hidden=(64,), batch_norm=True, activation="relu", num_classes=10):
    """The DNN with another default: what a checkpoint made before a default changed meets."""
    return models.DNN(hidden=hidden, batch_norm=batch_norm, activation=activation, num_classes=num_classes)


@pytest.mark.parametrize("recorded", [True, False], ids=["architecture recorded", "older checkpoint"])
def test_a_checkpoint_of_a_network_whose_default_changed_since_is_kept_aside(fake_data, tmp_path, monkeypatch,
                                                                               recorded):
    cfg = TrainConfig.for_model("dnn", epochs=2, lr=0.01)
    quiet_train(cfg, fake_data, tmp_path, stop_after=1)
    last = tmp_path / "run" / "ckpt" / "dnn" / "last.pt"
    if not recorded:
        old = torch.load(last, map_location="cpu", weights_only=True)
        del old["architecture"]
        torch.save(old, last)
    narrower = dataclasses.replace(models.SPECS["dnn"], factory=narrower_dnn)
    monkeypatch.setitem(models.SPECS, "dnn", narrower)  # same parameters, so the same fingerprint
    record, lines = quiet_train(cfg, fake_data, tmp_path)
    said = "hidden: [512, 256] -> [64]" if recorded else "its weights do not fit"
    assert any("for another dnn network" in line and said in line for line in lines), lines
    assert not any("Resuming" in line for line in lines)
    assert list(last.parent.glob("last.stale-*.pt"))
    assert record["architecture"]["hidden"] == [64] and len(record["history"]) == 2
    fresh, _ = quiet_train(cfg, fake_data, tmp_path, "fresh")
    assert without_timings(record["history"]) == without_timings(fresh["history"])


def test_the_record_holds_the_best_epochs_test_predictions(fake_data, tmp_path):
    record, _ = quiet_train(TrainConfig.for_model("dnn", epochs=2, lr=0.01, subset=[200, 100]), fake_data, tmp_path)
    predictions = record["predictions"]
    confusion = torch.tensor(predictions["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 100
    assert predictions["epoch"] == record["best_loss"]["epoch"]
    # the diagonal is the restored best weights' accuracy
    assert confusion.diag().sum().item() / 100 == pytest.approx(record["restored_best"]["test_acc"])
    assert confusion.sum(1).tolist() == [10] * 10  # the subset is class-balanced
    mistakes = predictions["mistakes"]
    assert len(mistakes) == min(100, 100 - confusion.diag().sum().item())
    assert all(true != predicted and 0 < confidence <= 1 for _, true, predicted, confidence in mistakes)
    assert [m[3] for m in mistakes] == sorted((m[3] for m in mistakes), reverse=True)


def test_half_written_files_of_a_killed_run_are_cleaned(fake_data, tmp_path):
    ckpt, results = tmp_path / "run" / "ckpt" / "dnn", tmp_path / "run" / "results"
    ckpt.mkdir(parents=True)
    results.mkdir(parents=True)
    leftovers = [ckpt / ".last.pt.abc123.tmp", results / ".dnn.json.def456.tmp"]
    for path in leftovers:
        path.write_bytes(b"half a file")
    (results / ".cnn.json.789.tmp").write_bytes(b"another model's run may be writing this")
    quiet_train(TrainConfig.for_model("dnn", epochs=1, subset=[100, 50]), fake_data, tmp_path)
    assert not any(path.exists() for path in leftovers) and (results / ".cnn.json.789.tmp").exists()


def test_a_missing_best_checkpoint_is_said_not_hidden(fake_data, tmp_path):
    cfg = TrainConfig.for_model("dnn", epochs=2, lr=0.01, subset=[100, 50])
    quiet_train(cfg, fake_data, tmp_path)
    (tmp_path / "run" / "ckpt" / "dnn" / "best.pt").unlink()
    record, lines = quiet_train(cfg, fake_data, tmp_path)  # resumes the finished run
    assert record["restored_best"] is None and record["predictions"] is None
    warnings = [line for line in lines if line.startswith("Warning:") and "best.pt is missing" in line]
    assert len(warnings) == 2 and all("FORCE=1" in line for line in warnings)  # when it resumes, and at the end
    resumed = next(i for i, line in enumerate(lines) if line.startswith("Resuming"))
    assert lines.index(warnings[0]) == resumed + 4  # right after the course replayed: a heading and 2 epochs
    assert lines[resumed + 3].startswith("epoch 2/2")


@pytest.mark.parametrize("damage", ["truncated", "other network"])
def test_a_bad_best_checkpoint_stops_a_resumed_run_before_its_first_epoch(fake_data, tmp_path, damage):
    cfg = TrainConfig.for_model("dnn", epochs=3, lr=0.01, subset=[100, 50])
    partial, _ = quiet_train(cfg, fake_data, tmp_path, stop_after=1)
    best = tmp_path / "run" / "ckpt" / "dnn" / "best.pt"
    if damage == "truncated":
        best.write_bytes(best.read_bytes()[:1000])
    else:
        torch.save(models.build_model("cnn").state_dict(), best)
    trained = []
    with pytest.raises(checkpoint.CheckpointError) as error:
        quiet_train(cfg, fake_data, tmp_path, on_epoch_end=lambda epoch, row: trained.append(epoch))
    assert trained == []  # found at the start, not after the last epoch
    message = str(error.value)
    assert f"the best weights {best} (of epoch 1) cannot be used" in message
    assert ("do not fit this network" if damage == "other network" else "zip archive") in message
    assert "Delete the file to go on without them" in message and "FORCE=1" in message
    assert json.loads((tmp_path / "run" / "results" / "dnn.json").read_text())["history"] == partial["history"]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_stop_after_must_be_a_positive_whole_number(fake_data, tmp_path, bad):
    with pytest.raises(ConfigError, match="STOP_AFTER must be None or a whole number >= 1"):
        quiet_train(TrainConfig.for_model("dnn", epochs=1), fake_data, tmp_path, stop_after=bad)
    assert not (tmp_path / "run").exists()


def test_cuda_out_of_memory_becomes_a_message_that_says_what_to_lower(fake_data, tmp_path, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr("cifar_helpers.engine.train.train_one_epoch", out_of_memory)
    with pytest.raises(RuntimeError, match="ran out of memory.*Lower EVAL_BATCH_SIZE.*BATCH_SIZE.*AMP=True"):
        quiet_train(TrainConfig.for_model("dnn", epochs=1), fake_data, tmp_path)


def test_progress_is_one_line_per_epoch_outside_an_interactive_kernel(monkeypatch):
    from cifar_helpers.core.progress import batch_progress, progress_mode

    monkeypatch.delenv("CIFAR_PROGRESS", raising=False)
    assert progress_mode() == "lines"  # pytest is no Jupyter kernel
    monkeypatch.setenv("CIFAR_PROGRESS", "bar")
    assert progress_mode() == "bar"
    assert list(batch_progress(iter([1, 2, 3]), 3, "epoch 1", "lines")) == [1, 2, 3]


def test_a_replayed_course_heads_each_span_with_the_setup_that_trained_it():
    from cifar_helpers.core.progress import format_course

    row = dict(train_loss=1.0, train_acc=0.5, test_loss=1.1, test_acc=0.45, lr=0.1, train_seconds=2.0, eval_seconds=0.5)
    history = [{**row, "epoch": e} for e in (1, 2, 3)]
    sessions = [{"first_epoch": 1, "last_epoch": 2, "device_name": "CPU (2 threads)", "git_commit": "dc0e26145f7a",
                 "uncommitted_code": None},
                {"first_epoch": 3, "last_epoch": 3, "device_name": "NVIDIA H200", "git_commit": "d6d161169a8f",
                 "uncommitted_code": True}]
    lines = format_course(history, sessions, 100)
    assert lines[0] == "epochs 1-2: trained on CPU (2 threads), commit dc0e261"
    assert lines[1].startswith("epoch   1/100  train loss 1.0000 acc  50.00%  test loss 1.1000 acc  45.00%  lr 0.1")
    assert lines[3] == "epoch 3: trained on NVIDIA H200, commit d6d1611 with uncommitted code changes"
    assert len(lines) == 5


def test_a_finished_run_without_its_checkpoint_is_shown_from_its_record_not_trained_again(fake_data, tmp_path):
    cfg = TrainConfig.for_model("dnn", epochs=2, lr=0.01)
    first, _ = quiet_train(cfg, fake_data, tmp_path)
    for name in ("last.pt", "best.pt"):
        (tmp_path / "run" / "ckpt" / "dnn" / name).unlink()
    shown, lines = quiet_train(cfg, fake_data, tmp_path)
    assert shown == first  # the record itself: nothing retrained, nothing rewritten
    assert any("holds this run" in line and "showing it, not training it again" in line for line in lines)
    assert not (tmp_path / "run" / "ckpt" / "dnn" / "last.pt").exists()
    # Other parameters are another run: trained, never served from the old record.
    other, lines = quiet_train(TrainConfig.for_model("dnn", epochs=2, lr=0.02), fake_data, tmp_path)
    assert other["fingerprint"] != first["fingerprint"] and not any("holds this run" in line for line in lines)
    kept = tmp_path / "run" / "results" / f".dnn.json.stale-{first['fingerprint']}"
    assert json.loads(kept.read_text()) == first  # the former run's record is never overwritten
    assert any("held another run's record" in line and kept.name in line for line in lines)


def test_a_partial_record_is_shown_only_as_far_as_it_was_asked_to_go(fake_data, tmp_path):
    cfg = TrainConfig.for_model("dnn", epochs=3, lr=0.01)
    partial, _ = quiet_train(cfg, fake_data, tmp_path, stop_after=2)
    (tmp_path / "run" / "ckpt" / "dnn" / "last.pt").unlink()
    shown, lines = quiet_train(cfg, fake_data, tmp_path, stop_after=2)
    assert shown == partial and any("up to epoch 2" in line for line in lines)
    further, lines = quiet_train(cfg, fake_data, tmp_path, stop_after=3)  # no checkpoint to resume: afresh
    assert further["complete"] is True and len(further["history"]) == 3
    assert not any("showing it" in line or "Resuming" in line for line in lines)
    assert any("but its checkpoint is gone: training afresh from epoch 1" in line for line in lines)
    kept = json.loads((tmp_path / "run" / "results" / ".dnn.json.before-restart").read_text())
    assert kept == partial  # the partial record is never lost to the restart


def test_an_older_checkpoint_copied_in_resumes_and_the_longer_record_is_kept_aside(fake_data, tmp_path):
    """The checkpoint is what a run goes on from; a results file of the same run that went further (an older
    checkpoint copied back in) is moved aside before the resumed run rewrites it, and the resumed course is
    the checkpoint's."""
    cfg = TrainConfig.for_model("dnn", epochs=3, lr=0.01)
    quiet_train(cfg, fake_data, tmp_path, stop_after=1)
    folder = tmp_path / "run" / "ckpt" / "dnn"
    shutil.copytree(folder, tmp_path / "after-1")
    longer, _ = quiet_train(cfg, fake_data, tmp_path, stop_after=2)
    for name in ("last.pt", "best.pt"):
        shutil.copy(tmp_path / "after-1" / name, folder / name)
    resumed, lines = quiet_train(cfg, fake_data, tmp_path, stop_after=2)
    assert any("holds another course of this run (2 epochs) than the checkpoint's 1" in line for line in lines)
    kept = json.loads((tmp_path / "run" / "results" / ".dnn.json.before-resume").read_text())
    assert kept == longer
    assert [row["test_loss"] for row in resumed["history"]] == [row["test_loss"] for row in longer["history"]]
    # Its own record, one epoch behind its checkpoint (a crash between the two writes), is no other course.
    again, lines = quiet_train(cfg, fake_data, tmp_path, stop_after=3)
    assert not any("another course" in line for line in lines) and len(again["history"]) == 3


def test_a_record_from_before_sessions_is_shown_with_the_setup_that_wrote_it(fake_data, tmp_path):
    cfg = TrainConfig.for_model("dnn", epochs=2, lr=0.01)
    first, _ = quiet_train(cfg, fake_data, tmp_path)
    path = tmp_path / "run" / "results" / "dnn.json"
    legacy = {k: v for k, v in first.items() if k != "sessions"}
    path.write_text(json.dumps(legacy))
    for name in ("last.pt", "best.pt"):
        (tmp_path / "run" / "ckpt" / "dnn" / name).unlink()
    shown, lines = quiet_train(cfg, fake_data, tmp_path)
    assert shown == legacy
    commit = (first["git_commit"] or "unknown commit")[:7]
    assert (f"epochs 1-2: trained before sessions were recorded; the record was written on {first['device_name']}, "
            f"commit {commit}") in "\n".join(lines)
