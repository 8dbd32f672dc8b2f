"""Never silently wrong: two runs on one folder, unwritable and full output folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cifar_helpers.workbook import run_all
from cifar_helpers.core.files import WriteError, atomic_write_json, remove_leftovers
from cifar_helpers.engine.checkpoint import CheckpointError
from cifar_helpers.engine.config import TrainConfig
from cifar_helpers.core.files import FolderInUseError, exclusive
from cifar_helpers.core.paths import FolderNotWritableError
from cifar_helpers.engine.train import train_model

HOLD_SCRIPT = textwrap.dedent("""
    import sys, time
    from cifar_helpers.core.files import exclusive
    with exclusive(sys.argv[1], "the checkpoints of dnn", "set another CHECKPOINT_DIR"):
        print("holding", flush=True)
        time.sleep(600)
""")


@pytest.fixture
def holder(tmp_path):
    """Start a process that holds the lock of a folder; yields (folder, process)."""
    procs = []

    def start(folder):
        script = tmp_path / "hold.py"
        script.write_text(HOLD_SCRIPT)
        proc = subprocess.Popen([sys.executable, str(script), str(folder)], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "holding"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def train(cfg, data, tmp_path, **kwargs):
    return train_model(cfg, data, device="cpu", log=lambda line: None, **{
        "results_dir": tmp_path / "results", "checkpoint_dir": tmp_path / "ckpt", **kwargs})


def test_a_second_run_on_the_same_checkpoints_stops_at_once_and_a_killed_one_leaves_no_lock(
        fake_data, tmp_path, holder):
    proc = holder(tmp_path / "ckpt" / "dnn")
    cfg = TrainConfig.for_model("dnn", epochs=1, subset=[100, 50])
    started = time.monotonic()
    with pytest.raises(FolderInUseError) as error:
        train(cfg, fake_data, tmp_path)
    assert time.monotonic() - started < 30
    message = str(error.value)
    assert f"process {proc.pid}" in message and "the checkpoints of dnn" in message
    assert "another CHECKPOINT_DIR" in message
    assert not (tmp_path / "ckpt" / "dnn" / "last.pt").exists() and not list((tmp_path / "results").glob("*.json"))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    record = train(cfg, fake_data, tmp_path)  # the kernel dropped the dead run's lock
    assert record["complete"] is True


def test_one_results_file_has_one_writer(fake_data, tmp_path):
    """A second run with the same RESULTS_DIR and another CHECKPOINT_DIR stops at once; another model's may run."""
    cfg = TrainConfig.for_model("dnn", epochs=1, subset=[100, 50])
    seen = {}

    def second_runs(epoch, row):
        with pytest.raises(FolderInUseError) as error:
            train(cfg, fake_data, tmp_path, checkpoint_dir=tmp_path / "other-ckpt")
        seen["error"] = str(error.value)
        seen["cnn"] = train(TrainConfig.for_model("cnn", epochs=1, subset=[100, 50]), fake_data, tmp_path,
                            checkpoint_dir=tmp_path / "other-ckpt")

    first = train(cfg, fake_data, tmp_path, on_epoch_end=second_runs)
    assert f"the results of dnn in {tmp_path / 'results'} are in use by another run (process {os.getpid()}" \
        in seen["error"] and "set another RESULTS_DIR" in seen["error"]
    assert not list((tmp_path / "other-ckpt" / "dnn").glob("*.pt"))
    on_disk = json.loads((tmp_path / "results" / "dnn.json").read_text())
    assert on_disk["fingerprint"] == first["fingerprint"] and on_disk["complete"] is True
    assert seen["cnn"]["complete"] is True and (tmp_path / "results" / "cnn.json").is_file()


WRITER_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from cifar_helpers.core.files import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_bytes(b"half a figure")
        print(tmp, flush=True)
        if sys.argv[2] == "killed":
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup runs
        time.sleep(600)
""")


def start_writer(tmp_path, target, fate):
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(target), fate], stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def test_leftovers_of_killed_writes_are_removed_and_live_writes_kept(tmp_path):
    killed, dead_tmp = start_writer(tmp_path, tmp_path / "figs" / "fig1.png", "killed")
    killed.wait()
    live, live_tmp = start_writer(tmp_path, tmp_path / "figs" / "fig4.png", "running")
    try:
        assert os.path.exists(dead_tmp) and os.path.exists(live_tmp)
        assert remove_leftovers(tmp_path / "figs") == [Path(dead_tmp)]
        assert not os.path.exists(dead_tmp) and os.path.exists(live_tmp)
    finally:
        live.kill()
        live.wait()


def test_saving_a_figure_removes_the_leftovers_of_a_killed_save(tmp_path):
    import matplotlib.pyplot as plt

    from cifar_helpers.report.style import save_figure

    killed, dead_tmp = start_writer(tmp_path, tmp_path / "figs" / "fig1_loss_curves.png", "killed")
    killed.wait()
    fig = plt.figure()
    save_figure(fig, tmp_path / "figs" / "test_accuracy")
    plt.close(fig)
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["test_accuracy.pdf", "test_accuracy.png"]


def test_the_lock_is_released_when_the_block_ends(tmp_path):
    with exclusive(tmp_path, "the things", "do something else"):
        with pytest.raises(FolderInUseError, match="the things"):
            # flock locks belong to open file descriptions: a second open in one process conflicts too
            with exclusive(tmp_path, "the things", "do something else"):
                pass
    with exclusive(tmp_path, "the things", "do something else"):
        pass


def test_two_make_runs_on_one_folder(tmp_path, holder, capsys):
    proc = holder(tmp_path / "executed")
    params = tmp_path / "p.yaml"
    params.write_text(f"DATA_DIR: {tmp_path}\nRESULTS_DIR: {tmp_path}/results\nCHECKPOINT_DIR: {tmp_path}/ckpt\n")
    code = run_all.main(["--params", str(params), "--only", "06", "--executed-dir", str(tmp_path / "executed")])
    assert code == 1
    err = capsys.readouterr().err
    assert "make run stopped" in err and f"process {proc.pid}" in err and "another --executed-dir" in err


@pytest.mark.parametrize("busy", ["01", "02"])
def test_force_never_touches_the_checkpoints_of_a_run_in_progress(tmp_path, fake_data_dir, holder, monkeypatch,
                                                                  capsys, busy):
    """make run FORCE=1 beside a notebook training in JupyterLab: it stops before any notebook, deleting nothing."""
    ckpt = {"01": tmp_path / "ckpt" / "dnn", "02": tmp_path / "ckpt" / "cnn"}
    for folder in ckpt.values():
        folder.mkdir(parents=True)
        for name in ("last.pt", "best.pt"):
            (folder / name).write_bytes(b"a live run's checkpoint")
    proc = holder(ckpt[busy])
    params = tmp_path / "p.yaml"
    params.write_text(f"DATA_DIR: {fake_data_dir}\nDEVICE: cpu\nEPOCHS: 1\n"
                      f"RESULTS_DIR: {tmp_path}/results\nCHECKPOINT_DIR: {tmp_path}/ckpt\n")
    monkeypatch.setattr(run_all, "run_notebook", lambda *a: pytest.fail("no notebook may start"))
    argv = ["--params", str(params), "--only", "01,02", "--executed-dir", str(tmp_path / "executed"), "--force"]
    assert run_all.main(argv) == 1
    err = capsys.readouterr().err
    assert "make run stopped" in err and f"process {proc.pid}" in err and str(ckpt[busy]) in err
    with pytest.raises(FolderInUseError):  # and when it takes its turn, had the run started meanwhile
        run_all.discard_checkpoints({"CHECKPOINT_DIR": str(tmp_path / "ckpt")}, ckpt[busy].name)
    assert all((folder / name).read_bytes() == b"a live run's checkpoint"
               for folder in ckpt.values() for name in ("last.pt", "best.pt"))


def test_an_unwritable_results_folder_is_found_before_the_first_epoch(fake_data, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cfg = TrainConfig.for_model("dnn", epochs=1, subset=[100, 50])
    with pytest.raises(FolderNotWritableError) as error:
        train(cfg, fake_data, tmp_path, results_dir=blocker / "results")
    assert f"RESULTS_DIR='{blocker / 'results'}' cannot be written" in str(error.value)
    assert "set RESULTS_DIR to another folder" in str(error.value)
    assert not (tmp_path / "ckpt" / "dnn" / "last.pt").exists()  # no epoch was trained
    with pytest.raises(FolderNotWritableError, match="CHECKPOINT_DIR="):
        train(cfg, fake_data, tmp_path, checkpoint_dir=blocker / "ckpt")


@pytest.mark.parametrize("name", ["RESULTS_DIR", "CHECKPOINT_DIR", "FIGURES_DIR"])
def test_make_run_checks_every_output_folder_first(tmp_path, monkeypatch, capsys, name):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    params = tmp_path / "p.yaml"
    params.write_text(f"{name}: {blocker}/out\n")
    monkeypatch.setattr(run_all, "run_notebook", lambda *a: pytest.fail("nothing may start"))
    assert run_all.main(["--params", str(params), "--executed-dir", str(tmp_path / "executed")]) == 1
    assert f"{name}='{blocker}/out' cannot be written" in capsys.readouterr().err


def test_an_unwritable_executed_folder_is_named(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert run_all.main(["--only", "06", "--executed-dir", str(blocker / "executed")]) == 1
    assert "executed-notebook folder" in capsys.readouterr().err


def test_a_full_disk_while_checkpointing_says_what_happened(fake_data, tmp_path, monkeypatch):
    def disk_full(obj, file):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 3456 vs 3400")

    monkeypatch.setattr("torch.save", disk_full)
    with pytest.raises(CheckpointError) as error:
        train(TrainConfig.for_model("dnn", epochs=1, subset=[100, 50]), fake_data, tmp_path)
    message = str(error.value)
    assert "could not write the checkpoint" in message and "disk full" in message and "CHECKPOINT_DIR" in message
    assert not list((tmp_path / "ckpt").rglob("*.tmp"))


def test_a_failed_write_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    atomic_write_json(target, {"old": True})

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", no_space)
    with pytest.raises(WriteError, match=f"could not write {target} \\(No space left on device\\)"):
        atomic_write_json(target, {"new": True})
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
