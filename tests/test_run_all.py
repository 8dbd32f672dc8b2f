"""`make run`: parameter profiles, skipping, the CPU estimate, and a failing notebook."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from test_results import make_result

from cifar_helpers.core.hashing import short_hash
from cifar_helpers.core.paths import REPO_ROOT
from cifar_helpers.data.cifar10 import DataSummary
from cifar_helpers.engine.config import TrainConfig
from cifar_helpers.engine.record import RunIdentity
from cifar_helpers.models import architecture
from cifar_helpers.workbook import run_all
from cifar_helpers.workbook.run_all import Job, RunError, check_cpu_cost, is_complete, load_profile


def test_profile_applies_only_declared_parameters_with_per_notebook_overrides(tmp_path):
    file = tmp_path / "p.yaml"
    file.write_text("EPOCHS: 2\nFIGURES_DIR: f\nworkbook: {fake_data: null}\n"
                    "notebooks:\n  05_custom_resnet: {EPOCHS: 4, PATIENCE: 2}\n")
    profile = load_profile(file)
    assert profile.for_notebook("01_dnn", {"EPOCHS", "LR"}) == {"EPOCHS": 2}
    assert profile.for_notebook("05_custom_resnet", {"EPOCHS", "PATIENCE"}) == {"EPOCHS": 4, "PATIENCE": 2}
    assert profile.for_notebook("06_analysis", {"FIGURES_DIR", "RESULTS_DIR"}) == {"FIGURES_DIR": "f"}


def test_a_profile_passes_the_fast_recipe_to_the_training_notebooks_alone(tmp_path, declared_by):
    file = tmp_path / "p.yaml"
    file.write_text("NESTEROV: true\nnotebooks:\n  05_custom_resnet: {WARMUP_FRACTION: 0.1, MOMENTUM: 0.8}\n")
    profile = load_profile(file)
    run_all.check_profile_names(profile, declared_by)
    assert profile.for_notebook("05_custom_resnet", set(declared_by["05_custom_resnet"])) == {
        "NESTEROV": True, "WARMUP_FRACTION": 0.1, "MOMENTUM": 0.8}
    assert profile.for_notebook("01_dnn", set(declared_by["01_dnn"])) == {"NESTEROV": True}
    assert profile.for_notebook("06_analysis", set(declared_by["06_analysis"])) == {}
    file.write_text("notebooks:\n  06_analysis: {NESTEROV: true}\n")
    with pytest.raises(RunError, match="unknown parameter 'NESTEROV' in notebooks: 06_analysis"):
        run_all.check_profile_names(load_profile(file), declared_by)


@pytest.mark.parametrize("text, message", [
    ("EPOCHS: [1, 2", "not valid YAML"),
    ("- 1\n- 2\n", "must hold a mapping"),
    ("notebooks: {07_vgg: {EPOCHS: 1}}\n", "unknown notebook"),
])
def test_bad_profiles_are_refused(tmp_path, text, message):
    file = tmp_path / "p.yaml"
    file.write_text(text)
    with pytest.raises(RunError, match=message):
        load_profile(file)
    with pytest.raises(RunError, match="not found"):
        load_profile(tmp_path / "missing.yaml")


@pytest.mark.parametrize("text, message", [
    ("epochs: 1\n", "unknown parameter 'epochs' in the parameter file; did you mean EPOCHS?"),
    ("EPOCH: 1\n", "unknown parameter 'EPOCH' in the parameter file; did you mean EPOCHS?"),
    ("notebooks:\n  06_analysis: {EPOCHS: 3}\n", "unknown parameter 'EPOCHS' in notebooks: 06_analysis"),
    ("notebooks:\n  05_custom_resnet: {PATIENCES: 3}\n", "did you mean PATIENCE?"),
    ("workbook: {onli: [01_dnn]}\n", "unknown parameter 'onli' in workbook:; did you mean only?"),
    ('EPOCHS: "ten"\n', "01_dnn: EPOCHS must be a whole number >= 1, got 'ten'"),
    ("BATCH_SIZE: 0\n", "01_dnn: BATCH_SIZE must be a whole number >= 1, got 0"),
    ("STOP_AFTER: 0\n", "01_dnn: STOP_AFTER must be None or a whole number >= 1, got 0"),
    ("DEVICE: 1\n", "01_dnn: DEVICE must be one of auto, cuda, mps, cpu (or cuda:N) as text, got 1"),
    ("workbook: {only: 01}\n", "only: 1: notebooks are named as text"),
    ("workbook: {fake_data: {dir: data/fake}}\n", "fake_data needs n_train and n_test, as in fake_data: {dir: "),
    ("workbook: {fake_data: {dir: x, n_train: 400, n_test: 5}}\n", "fake_data's n_test must be a whole number >= 10"),
    ("workbook: {fake_data: {dir: x, n_train: 400, n_test: 50, size: 3}}\n", "unknown parameter 'size' in fake_data:"),
    ("workbook: {fake_data: data/fake}\n", "fake_data must be a mapping such as"),
    ("notebooks: {01_dnn: {DROPOUT: 0.2}}\n", "unknown parameter 'DROPOUT' in notebooks: 01_dnn"),
])
def test_a_misspelled_name_or_a_bad_value_stops_make_run_in_one_line_before_any_work(tmp_path, monkeypatch, capsys,
                                                                                     text, message):
    file = tmp_path / "p.yaml"
    file.write_text(f"RESULTS_DIR: {tmp_path}/results\nCHECKPOINT_DIR: {tmp_path}/ckpt\nDEVICE: cpu\nSUBSET: 100\n"
                    f"{text}")
    monkeypatch.setattr(run_all, "run_notebook", lambda *a: pytest.fail("nothing may start"))
    monkeypatch.setattr(run_all, "check_cpu_cost", lambda *a, **k: pytest.fail("no estimate before the names"))
    assert run_all.main(["--params", str(file), "--only", "01,06", "--executed-dir", str(tmp_path / "ex")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0 and "Traceback" not in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "ckpt").exists()


def test_a_gpu_profile_without_a_gpu_stops_before_any_notebook(tmp_path, monkeypatch, capsys):
    file = tmp_path / "p.yaml"
    file.write_text(f"DEVICE: cuda\nworkbook:\n  executed_dir: {tmp_path / 'executed'}\n")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr(run_all, "run_notebook", lambda *a: pytest.fail("nothing may start"))
    assert run_all.main(["--params", str(file), "--only", "03"]) == 1
    err = capsys.readouterr().err
    assert "make run stopped: 03_resnet: DEVICE='cuda', but PyTorch sees no CUDA GPU" in err
    assert not (tmp_path / "executed").exists()


def test_numbers_are_read_as_the_notebooks_write_them(tmp_path):
    file = tmp_path / "p.yaml"
    file.write_text("LR: 1e-3\nWEIGHT_DECAY: 5e-4\nGAMMA: .5\nEPOCHS: 10\nDATA_DIR: '1e-3'\n")
    params = load_profile(file).params
    assert params == {"LR": 0.001, "WEIGHT_DECAY": 0.0005, "GAMMA": 0.5, "EPOCHS": 10, "DATA_DIR": "1e-3"}
    assert isinstance(params["EPOCHS"], int)


@pytest.fixture(scope="module")
def declared_by():
    """Each notebook's parameters, read once for all the profiles."""
    return {nb: run_all.declared_parameters(run_all.NOTEBOOK_DIR / f"{nb}.ipynb") for nb, _ in run_all.NOTEBOOKS}


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO_ROOT / "params").glob("*.yaml")))
def test_every_committed_profile_names_parameters_the_notebooks_declare(name, declared_by):
    profile = load_profile(REPO_ROOT / "params" / name)
    run_all.check_profile_names(profile, declared_by)  # raises RunError naming the first unknown one
    assert set(profile.settings.get("only", [])) <= set(declared_by)


def test_complete_means_same_parameters_same_network_same_data_and_an_intact_results_file(tmp_path):
    params = {"EPOCHS": 2, "RESULTS_DIR": str(tmp_path), "DEVICE": "cpu"}
    state = tmp_path / "state.json"
    d1 = DataSummary("d1", n_train=400, n_test=200)  # what DATA_DIR holds now
    assert not is_complete(state, params, "dnn", d1)
    state.write_text(json.dumps({"params_hash": short_hash(params)}))  # the notebook ran to its end
    run = RunIdentity.of(TrainConfig.for_model("dnn", epochs=2), "cpu", "d1", n_train=400, n_test=200)
    finished = {**make_result("dnn", epochs=2, best_loss_epoch=1), "fingerprint": run.fingerprint, "data_digest": "d1",
                "architecture": architecture("dnn")}
    (tmp_path / "dnn.json").write_text(json.dumps(finished))
    assert is_complete(state, params, "dnn", d1)
    assert not is_complete(state, params, "dnn", DataSummary("d2", 400, 200))  # the data changed under the finished run
    assert not is_complete(state, params, "dnn", None)  # no data there now
    assert not is_complete(state, {**params, "EPOCHS": 3}, "dnn", d1)
    assert not is_complete(state, {**params, "EPOCH": 3}, "dnn", d1)  # the notebook will name the typo
    (tmp_path / "dnn.json").write_text(json.dumps({**finished, "fingerprint": "other run"}))
    assert not is_complete(state, params, "dnn", d1)
    (tmp_path / "dnn.json").write_text(json.dumps({**finished, "complete": False, "epochs_planned": 3}))
    assert not is_complete(state, params, "dnn", d1)  # a partial run (STOP_AFTER) goes on
    # a factory default changed since the run (the ResNet's widths, say): the same parameters, another network
    (tmp_path / "dnn.json").write_text(json.dumps({**finished, "architecture": architecture("dnn", hidden=(64,))}))
    assert not is_complete(state, params, "dnn", d1)
    (tmp_path / "dnn.json").write_text(json.dumps({key: v for key, v in finished.items() if key != "architecture"}))
    assert not is_complete(state, params, "dnn", d1)  # a file from before the network was recorded
    (tmp_path / "dnn.json").write_text("{truncated")
    assert not is_complete(state, params, "dnn", d1)


def test_make_run_reads_what_the_data_are_from_the_loaders_cache_not_the_images(fake_data_dir, tmp_path, monkeypatch):
    first = run_all.inspect_data(fake_data_dir)  # loaded once into the cache if no test loaded it before
    assert (first.n_train, first.n_test) == (400, 200)
    monkeypatch.setattr("cifar_helpers.data.cifar10.load_cifar10", lambda *a, **k: pytest.fail("no load, no decode"))
    assert run_all.inspect_data(fake_data_dir) == first
    assert run_all.inspect_data(tmp_path / "nothing-here") is None  # the notebook will say where to get the data


def test_a_days_long_cpu_run_is_refused_with_an_estimate(monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr("cifar_helpers.workbook.estimate.epoch_seconds", lambda cfg, device, n_train: 600.0)
    jobs = [Job("01_dnn", "dnn", {"EPOCHS": 100, "DEVICE": "auto", "SUBSET": None, "DATA_DIR": None}),
            Job("06_analysis", None, {})]
    with pytest.raises(RunError) as error:
        check_cpu_cost(jobs, assume_yes=False)
    text = str(error.value)
    assert "No GPU" in text and "10 min 00 s per epoch x 100 epochs = 16 h 40 min" in text
    assert "make smoke" in text and "params/fast.yaml" in text and "YES=1" in text
    check_cpu_cost(jobs, assume_yes=True)  # --yes starts it anyway, and says so
    out = capsys.readouterr().out
    assert "Starting anyway (YES=1)." in out and "make run YES=1" not in out  # no advice to do what it does


def test_the_closing_line_names_the_folders_the_notebooks_wrote_to():
    jobs = [Job("01_dnn", "dnn", {"RESULTS_DIR": "reference/cpu-jpeg/results", "FIGURES_DIR": None}),
            Job("06_analysis", None, {"RESULTS_DIR": "reference/cpu-jpeg/results", "FIGURES_DIR": None})]
    assert run_all.outputs_line(jobs) == ("Figures are in figures/, results and Table 1 in reference/cpu-jpeg/results/ "
                                          "(see 06_analysis).")

def test_small_cpu_runs_need_no_estimate(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr("cifar_helpers.workbook.estimate.epoch_seconds", lambda *a: pytest.fail("no estimate needed"))
    check_cpu_cost([Job("01_dnn", "dnn", {"EPOCHS": 100, "SUBSET": [500, 100]}),
                    Job("02_cnn", "cnn", {"EPOCHS": 3, "DATA_DIR": None}),
                    Job("03_resnet", "resnet", {"EPOCHS": 100, "DATA_DIR": "data/fake"})],
                   assume_yes=False, data_sizes={REPO_ROOT / "data/fake": 400})


def test_a_long_run_on_a_known_small_data_set_is_still_estimated(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr("cifar_helpers.workbook.estimate.epoch_seconds", lambda cfg, device, n_train: 3600.0)
    with pytest.raises(RunError, match="No GPU"):
        check_cpu_cost([Job("03_resnet", "resnet", {"EPOCHS": 1000, "DATA_DIR": "data/fake"})],
                       assume_yes=False, data_sizes={REPO_ROOT / "data/fake": 400})


def test_the_estimate_scales_by_the_images_really_in_data_dir(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    seen = []
    monkeypatch.setattr("cifar_helpers.workbook.estimate.epoch_seconds",
                        lambda cfg, device, n_train: seen.append(n_train) or 3600.0)
    with pytest.raises(RunError, match="No GPU"):
        check_cpu_cost([Job("02_cnn", "cnn", {"EPOCHS": 100, "DATA_DIR": "data/small"})],
                       assume_yes=False, data_sizes={REPO_ROOT / "data/small": 5000})
    assert seen == [5000]


def test_an_apple_gpu_is_not_estimated_as_the_cpu(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr("cifar_helpers.engine.device._mps_available", lambda: True)
    monkeypatch.setattr("cifar_helpers.workbook.estimate.epoch_seconds", lambda *a: pytest.fail("mps is no CPU"))
    check_cpu_cost([Job("03_resnet", "resnet", {"EPOCHS": 100, "DEVICE": "auto"})], assume_yes=False)


def test_estimate_times_a_real_step():
    import torch

    from cifar_helpers.engine.config import TrainConfig
    from cifar_helpers.workbook.estimate import epoch_seconds

    seconds = epoch_seconds(TrainConfig.for_model("dnn", batch_size=8), torch.device("cpu"), n_train=80)
    assert seconds > 0


@pytest.mark.slow
def test_a_failing_notebook_stops_the_run_with_its_name_and_error(tmp_path, capsys):
    from cifar_helpers.data.fake import write_fake_cifar10

    batches = write_fake_cifar10(tmp_path / "data", 100, 50, seed=0)
    (batches / "data_batch_1").write_bytes((batches / "data_batch_1").read_bytes()[:100])  # found by the notebook
    params = tmp_path / "bad.yaml"
    params.write_text(f"DATA_DIR: {tmp_path / 'data'}\nDEVICE: cpu\nEPOCHS: 1\n"
                      f"RESULTS_DIR: {tmp_path}/results\nCHECKPOINT_DIR: {tmp_path}/ckpt\n")
    code = run_all.main(["--params", str(params), "--only", "01,02", "--executed-dir", str(tmp_path / "executed")])
    err = capsys.readouterr().err
    assert code == 1
    assert "notebooks/01_dnn.ipynb failed in cell" in err and "CorruptDatasetError: Cannot read" in err
    assert (tmp_path / "executed" / "01_dnn.log").exists()
    assert not (tmp_path / "executed" / "02_cnn.ipynb").exists()  # the run stopped at the failure


def test_declared_defaults_are_values_not_source_text():
    defaults = run_all.declared_parameters(run_all.NOTEBOOK_DIR / "05_custom_resnet.ipynb")
    assert defaults["RESULTS_DIR"] == "results" and defaults["DATA_DIR"] is None and defaults["SUBSET"] is None
    assert defaults["EPOCHS"] == 300 and defaults["LR"] == 0.001 and defaults["AUGMENT"] is True


def test_the_report_protocol_without_a_gpu_is_estimated_and_refused(monkeypatch, capsys):
    """`make run` with the notebooks' own defaults, on a machine without a GPU."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr("cifar_helpers.workbook.estimate.epoch_seconds", lambda cfg, device, n_train: 120.0)
    monkeypatch.setattr(run_all, "run_notebook", lambda *a: pytest.fail("nothing may start"))
    assert run_all.main([]) == 1
    err = capsys.readouterr().err
    assert "No GPU" in err and "01_dnn" in err and "05_custom_resnet" in err and "make smoke" in err


def tiny_run(tmp_path, data_dir, extra: str = "", only: str = "01") -> list[str]:
    """make run's arguments for a one-epoch CPU profile on `data_dir`, everything under tmp_path."""
    params = tmp_path / "tiny.yaml"
    params.write_text(f"DATA_DIR: {data_dir}\nDEVICE: cpu\nEPOCHS: 1\n{extra}"
                      f"RESULTS_DIR: {tmp_path}/results\nCHECKPOINT_DIR: {tmp_path}/ckpt\n")
    return ["--params", str(params), "--only", only, "--executed-dir", str(tmp_path / "executed")]


@pytest.mark.slow
def test_data_changed_under_a_finished_run_retrains_instead_of_skipping(tmp_path, capsys):
    from cifar_helpers.data.fake import write_fake_cifar10

    data = tmp_path / "data"
    write_fake_cifar10(data, 100, 50, seed=0)
    argv = tiny_run(tmp_path, data)
    assert run_all.main(argv) == 0
    first = json.loads((tmp_path / "results" / "dnn.json").read_text())
    write_fake_cifar10(data, 100, 50, seed=1)  # other images, same folder, same counts
    capsys.readouterr()
    assert run_all.main(argv) == 0
    assert "01_dnn: done" in capsys.readouterr().out  # not "skipped"
    log = (tmp_path / "executed" / "01_dnn.log").read_text()
    assert "Resuming" not in log and "other parameters" in log and "starting fresh" in log
    second = json.loads((tmp_path / "results" / "dnn.json").read_text())
    assert second["data_digest"] != first["data_digest"] and second["fingerprint"] != first["fingerprint"]


@pytest.mark.slow
def test_a_rerun_skips_complete_results_and_force_retrains(tmp_path, fake_data_dir, capsys):
    argv = tiny_run(tmp_path, fake_data_dir, "SUBSET: [100, 50]\n")
    assert run_all.main(argv) == 0
    first = json.loads((tmp_path / "results" / "dnn.json").read_text())
    assert "01_dnn: done" in capsys.readouterr().out
    executed = (tmp_path / "executed" / "01_dnn.ipynb").read_text()
    assert str(REPO_ROOT) not in executed and '"input_path": "notebooks/01_dnn.ipynb"' in executed
    assert run_all.main(argv) == 0
    assert "01_dnn: skipped, results complete" in capsys.readouterr().out
    assert run_all.main(argv + ["--force"]) == 0
    out = capsys.readouterr().out
    assert "01_dnn: done" in out
    log = (tmp_path / "executed" / "01_dnn.log").read_text()
    assert "Resuming" not in log and "holds this run" not in log and "epoch 1/1" in log  # retrained from scratch
    kept = json.loads((tmp_path / "results" / ".dnn.json.before-force").read_text())  # aside, not lost
    assert kept["fingerprint"] == first["fingerprint"]
    again = json.loads((tmp_path / "results" / "dnn.json").read_text())
    strip = lambda r: [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in r["history"]]  # noqa: E731
    assert strip(again) == strip(first)


@pytest.mark.parametrize("value, expected", [(None, None), ("23,24,25", [23, 24, 25]), ([23, 7], [23, 7]), (5, [5])])
def test_seeds_parse(value, expected):
    assert run_all.parse_seeds(value) == expected


@pytest.mark.parametrize("value", ["23,23", "a,b", [23, -1], [1.5], [True]])
def test_bad_seeds_are_refused(value):
    with pytest.raises(RunError, match="SEEDS must be distinct whole numbers"):
        run_all.parse_seeds(value)


def test_further_seeds_write_beside_the_main_run_never_over_it():
    declared = {"SEED": 23, "RESULTS_DIR": "results", "CHECKPOINT_DIR": "checkpoints", "EPOCHS": 100}
    runs = run_all.seed_runs({"RESULTS_DIR": "results/x"}, declared, [23, 24])
    assert runs[0] == ({"SEED": 23}, "")
    changes, folder = runs[1]
    assert folder == "seed-24" and changes["SEED"] == 24
    assert changes["RESULTS_DIR"] == str(REPO_ROOT / "results/x/seed-24")
    assert changes["CHECKPOINT_DIR"] == str(REPO_ROOT / "checkpoints/seed-24")
    assert run_all.seed_runs({}, declared, None) == [({}, "")]


@pytest.mark.slow
def test_a_two_seed_run_gives_table1_mean_and_std(tmp_path, fake_data_dir):
    import pandas as pd

    params = tmp_path / "seeds.yaml"
    params.write_text(f"SEEDS: [23, 24]\nDATA_DIR: {fake_data_dir}\nDEVICE: cpu\nEPOCHS: 2\nSUBSET: [100, 50]\n"
                      f"RESULTS_DIR: {tmp_path}/results\nCHECKPOINT_DIR: {tmp_path}/ckpt\n"
                      f"FIGURES_DIR: {tmp_path}/figures\n")
    argv = ["--params", str(params), "--only", "01,06", "--executed-dir", str(tmp_path / "executed")]
    assert run_all.main(argv) == 0
    main = json.loads((tmp_path / "results" / "dnn.json").read_text())
    other = json.loads((tmp_path / "results" / "seed-24" / "dnn.json").read_text())
    assert (main["params"]["seed"], other["params"]["seed"]) == (23, 24)
    assert (tmp_path / "executed" / "seed-24" / "01_dnn.ipynb").is_file()
    assert (tmp_path / "ckpt" / "seed-24" / "dnn" / "last.pt").is_file()
    table = pd.read_csv(tmp_path / "results" / "table1.csv", dtype=str)
    accs = pd.Series([100 * max(r["test_acc"] for r in run["history"]) for run in (main, other)])
    assert table.loc[0, "Best Acc over seeds (%)"] == f"{accs.mean():.2f} ± {accs.std(ddof=1):.2f} (n=2)"
    assert float(table.loc[0, "Best Accuracy (%)"]) == pytest.approx(accs[0], abs=0.005)  # the main seed
    assert run_all.main(argv) == 0  # a rerun skips both seeds' complete runs


@pytest.mark.slow
def test_ctrl_c_stops_make_run_with_one_message(tmp_path, fake_data_dir):
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it: the kernel stops the training
    cell cleanly, make run says how to resume, and no traceback reaches the console."""
    import os
    import signal
    import subprocess
    import sys
    import time

    argv = tiny_run(tmp_path, fake_data_dir).copy()
    (tmp_path / "tiny.yaml").write_text((tmp_path / "tiny.yaml").read_text().replace("EPOCHS: 1", "EPOCHS: 500"))
    log = tmp_path / "executed" / "01_dnn.log"
    proc = subprocess.Popen([sys.executable, "-m", "cifar_helpers.workbook.run_all", *argv, "--yes"], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not (log.exists() and "epoch   2/500" in log.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None, "training never started"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "make run interrupted during 01_dnn" in err and "resume" in err
    assert "Traceback" not in err and "Traceback" not in out
    assert (tmp_path / "ckpt" / "dnn" / "last.pt").is_file()


@pytest.mark.parametrize("value, expected", [
    ("01_dnn", ["01_dnn"]),  # one name as a string, not its characters
    ("01,06", ["01_dnn", "06_analysis"]),
    (["06_analysis", "02"], ["02_cnn", "06_analysis"]),  # in run order
    (None, [nb for nb, _ in run_all.NOTEBOOKS if nb not in run_all.ON_REQUEST]),
])
def test_only_takes_names_prefixes_and_one_string(value, expected):
    assert run_all.parse_only(value) == expected


def test_your_model_runs_after_05_and_before_06_when_the_profile_gives_it_parameters():
    default = run_all.parse_only(None)
    assert "07_your_model" not in default and default[-1] == "06_analysis"
    asked = run_all.parse_only(None, asked={"07_your_model": {"EPOCHS": 1}})
    assert asked == [*default[:-1], "07_your_model", "06_analysis"] and default[-2] == "05_custom_resnet"
    assert run_all.parse_only("07,06") == ["07_your_model", "06_analysis"]


@pytest.mark.parametrize("value, message", [
    (1, "only: 1: notebooks are named as text"),  # YAML's `only: 01`
    ([1, 6], "in quotes: YAML reads 01 as the number 1"),
    ("08", "only: '08' matches none of the notebooks 01_dnn, "),
    ("01,", "only: '' matches none"),
])
def test_only_refuses_numbers_and_names_that_match_nothing(value, message):
    with pytest.raises(RunError, match=re.escape(message)):
        run_all.parse_only(value)


def test_only_as_one_string_in_a_profile_runs_that_notebook_alone(tmp_path, fake_data_dir, monkeypatch, capsys):
    file = tmp_path / "p.yaml"
    file.write_text(f"workbook: {{only: 01_dnn}}\nDATA_DIR: {fake_data_dir}\nDEVICE: cpu\nEPOCHS: 1\n"
                    f"RESULTS_DIR: {tmp_path}/results\nCHECKPOINT_DIR: {tmp_path}/ckpt\n")
    ran = []
    monkeypatch.setattr(run_all, "run_notebook", lambda notebook, *a: ran.append(notebook) or pytest.skip("ran"))
    with pytest.raises(pytest.skip.Exception):
        run_all.main(["--params", str(file), "--executed-dir", str(tmp_path / "executed")])
    assert ran == ["01_dnn"] and "Running 1 notebook with" in capsys.readouterr().out


@pytest.mark.parametrize("data, extra, message", [
    ("fake", "SUBSET: [300, 300]\n", "01_dnn: SUBSET=[300, 300] asks for 300 train / 300 test images, but the data "
                                     "hold 400 / 200: use at most those, or SUBSET=None for all of them"),
    ("/nonexistent/cifar", "", "01_dnn: DATA_DIR='/nonexistent/cifar' does not exist"),
])
def test_data_that_cannot_serve_stops_make_run_before_any_notebook(tmp_path, fake_data_dir, monkeypatch, capsys,
                                                                   data, extra, message):
    argv = tiny_run(tmp_path, fake_data_dir if data == "fake" else data, extra)
    monkeypatch.setattr(run_all, "run_notebook", lambda *a: pytest.fail("nothing may start"))
    assert run_all.main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0


KILLED_NOTEBOOK = {
    "cells": [{"cell_type": "code", "id": name, "metadata": metadata, "execution_count": None, "outputs": [],
               "source": source} for name, metadata, source in [
        ("params", {"tags": ["parameters"]}, 'FIGURES_DIR = "figures"'),
        ("oom", {}, "import os, signal\n\n# out of memory, as the kernel meets it\nos.kill(os.getpid(), signal.SIGKILL)"),
    ]],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


@pytest.mark.slow
def test_a_kernel_that_dies_ends_make_run_with_the_notebook_the_cell_and_how_to_resume(tmp_path):
    """A kernel killed mid-cell (out of memory, kill -9): make run names the notebook, the cell and the
    log, and says to run the same command again, instead of papermill's DeadKernelError traceback."""
    import shutil
    import subprocess
    import sys

    notebooks = tmp_path / "notebooks"
    shutil.copytree(run_all.NOTEBOOK_DIR, notebooks)
    (notebooks / "04_custom_resnet_architecture.ipynb").write_text(json.dumps(KILLED_NOTEBOOK))
    script = ("import sys; from pathlib import Path; from cifar_helpers.workbook import run_all\n"
              f"run_all.NOTEBOOK_DIR = Path({str(notebooks)!r})\n"
              f"sys.exit(run_all.main(['--only', '04', '--executed-dir', {str(tmp_path / 'executed')!r}]))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "DeadKernelError" not in done.stderr
    message = done.stderr[done.stderr.index("make run stopped:"):]
    log = tmp_path / "executed" / "04_custom_resnet_architecture.log"
    assert message.startswith("make run stopped: notebooks/04_custom_resnet_architecture.ipynb: its kernel died "
                              "in cell 2 (`os.kill(os.getpid(), signal.SIGKILL)`): it ran out of memory or was killed.")
    assert f"log: {log}" in message and message.strip().endswith("Run the same command again to resume.")
    assert len(message.strip().splitlines()) == 4


def test_kernels_are_not_interrupted_on_their_way_out(monkeypatch):
    """jupyter_client sends SIGINT before a shutdown; an idle kernel logs it as an ERROR line in the console."""
    import asyncio

    from jupyter_client import AsyncKernelManager

    sent = []

    async def interrupt(self):
        sent.append(self.shutting_down)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", interrupt)
    manager = run_all._tracked_kernel_manager()()
    asyncio.run(manager._async_interrupt_kernel())  # Kernel > Interrupt, or make run's Ctrl-C
    manager.shutting_down = True
    asyncio.run(manager._async_interrupt_kernel())  # the one before a shutdown
    assert sent == [False]


def test_the_estimate_counts_only_the_epochs_a_run_has_left(tmp_path, fake_data_dir, fake_data):
    """A resumed run is estimated for the epochs after its checkpoint; a finished one, or one already at its
    STOP_AFTER, for none; a partial record without its checkpoint trains afresh, so for all."""
    from cifar_helpers import train_model, training_run

    params = {**run_all.declared_parameters(run_all.NOTEBOOK_DIR / "01_dnn.ipynb"), "EPOCHS": 3, "DEVICE": "cpu",
              "DATA_DIR": str(fake_data_dir), "RESULTS_DIR": str(tmp_path / "results"),
              "CHECKPOINT_DIR": str(tmp_path / "ckpt")}
    data = run_all.inspect_data(fake_data_dir)
    assert run_all.epochs_to_train(params, "dnn", data) == (3, 0)
    assert run_all.epochs_to_train({**params, "STOP_AFTER": 2}, "dnn", data) == (2, 0)
    run = training_run("dnn", {**params, "STOP_AFTER": 1})
    train_model(run.config, fake_data, log=lambda line: None, **run.train_kwargs())
    assert run_all.epochs_to_train(params, "dnn", data) == (2, 1)
    assert run_all.epochs_to_train({**params, "STOP_AFTER": 1}, "dnn", data) == (0, 1)
    assert run_all.epochs_to_train({**params, "SEED": 24}, "dnn", data) == (3, 0)  # another run
    (tmp_path / "results" / "dnn.json").unlink()  # the checkpoint alone is what the run goes on from
    assert run_all.epochs_to_train(params, "dnn", data) == (2, 1)
    shutil.copy(tmp_path / "ckpt" / "dnn" / "last.pt", tmp_path / "last-after-1.pt")
    train_model(run.config, fake_data, log=lambda line: None, **{**run.train_kwargs(), "stop_after": 2})
    assert run_all.epochs_to_train(params, "dnn", data) == (1, 2)
    shutil.copy(tmp_path / "last-after-1.pt", tmp_path / "ckpt" / "dnn" / "last.pt")  # an older checkpoint
    assert run_all.epochs_to_train(params, "dnn", data) == (2, 1)  # not the record's 2 epochs
    (tmp_path / "ckpt" / "dnn" / "last.pt").unlink()
    assert run_all.epochs_to_train(params, "dnn", data) == (3, 0)
