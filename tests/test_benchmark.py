"""The benchmarks run (on the CPU, a tiny subset); their timings are never asserted."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from cifar_helpers.engine.config import ConfigError
from cifar_helpers.data.cifar10 import subset
from cifar_helpers.core.paths import REPO_ROOT
from cifar_helpers.engine.fast import GraphedStep

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_epoch_speed_times_plain_and_engine_on_a_cpu_subset(fake_data_dir, tmp_path, capsys):
    epoch_speed = load("epoch_speed")
    markdown, results = tmp_path / "RESULTS.md", tmp_path / "rows.json"
    rows = epoch_speed.main(["--device", "cpu", "--models", "dnn", "--subset", "64", "--epochs", "1",
                             "--warmup", "0", "--plain-warmup-steps", "1", "--workers", "1",
                             "--data-dir", str(fake_data_dir), "--markdown", str(markdown), "--json", str(results)])
    out = capsys.readouterr().out
    assert [(r.model, r.loop) for r in rows] == [("dnn", "plain"), ("dnn", "engine:eager")]
    assert all(r.seconds > 0 and r.n_train == 64 for r in rows)
    assert "SUBSET on the CPU: 64 of the training images" in out
    assert "| dnn | plain |" in out and "| dnn | engine:eager |" in out and "1.00x" in out
    text = markdown.read_text()
    assert text.startswith("# Benchmark results") and "## CPU, subset" in text and "torch " in text
    assert "commit: " in text and "| dnn | engine:eager |" in text
    saved = json.loads(results.read_text())
    assert [row["loop"] for row in saved["rows"]] == ["plain", "engine:eager"]


def test_graph_check_compares_the_graph_with_eager_under_the_same_optimizer(fake_data, monkeypatch, capsys):
    # On the CPU, with a capture that replays the step eagerly, the graph path must match its reference
    # bit for bit: the reference is eager with the graph's optimizer (a float32 device-tensor lr). Against
    # a float lr, conv nets drifted by percents within 64 steps and the check failed on an H200.
    graph_check = load("graph_check")
    make_step = graph_check.make_step

    def fake_capture_step(mode, model, optimizer, amp, device):
        if mode == "cuda_graph":
            return GraphedStep(model, optimizer, amp, device, capture=lambda body: body)
        return make_step(mode, model, optimizer, amp, device)

    monkeypatch.setattr(graph_check, "DEVICE", torch.device("cpu"))
    monkeypatch.setattr(graph_check, "make_step", fake_capture_step)
    monkeypatch.setattr(graph_check, "N_TRAIN", 200)  # batches of 64, 64, 64 and 8
    assert graph_check.check_equivalence(["dnn"], ["cuda_graph"], subset(fake_data, 200, 100))
    out = capsys.readouterr().out
    assert "NOISE dnn" in out and "eager vs eager (cuda_graph's optimizer): first 12 steps 0.00e+00" in out
    assert "PASS dnn           cuda_graph         vs eager: first 12 steps 0.00e+00" in out
    assert "graphs for batch sizes [8, 64]" in out


def test_epoch_speed_rejects_what_cannot_run(fake_data_dir):
    epoch_speed = load("epoch_speed")
    with pytest.raises(SystemExit):
        epoch_speed.main(["--models", "vgg"])
    with pytest.raises(SystemExit):
        epoch_speed.main(["--modes", "cuda_graph+fp8"])
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        epoch_speed.main(["--device", "cpu", "--models", "dnn", "--modes", "cuda_graph", "--no-plain",
                          "--subset", "20", "--data-dir", str(fake_data_dir)])


def test_suite_estimate_adds_up_the_report_epochs():
    epoch_speed = load("epoch_speed")
    rows = [epoch_speed.Row(model, "engine:eager", 64, 50_000, 10_000, [1.0], 0.5, 0.9)
            for model in epoch_speed.REPORT_EPOCHS]
    (intro, line) = epoch_speed.suite_estimate(rows)
    total_min = sum(epochs * 1.5 for epochs in epoch_speed.REPORT_EPOCHS.values()) / 60
    assert "engine:eager" in line and f"~{total_min:.0f} min" in line


def test_op_counts_fused_optimizer_is_one_launch():
    op_counts = load("op_counts")
    rows = {r["optimizer"]: r for r in op_counts.op_count_table(["dnn"], ["for-loop", "fused"], batch_size=2)}
    assert rows["fused"]["launch_optimizer"] <= 2 < rows["for-loop"]["launch_optimizer"]
    assert rows["fused"]["launch_forward"] == rows["for-loop"]["launch_forward"] > 0
    assert rows["fused"]["launch_backward"] > 0 and rows["fused"]["launch_metrics"] == 2


def test_fast_profile_builds_notebook_05s_config_from_the_profile():
    # Training itself is covered by test_steps (onecycle, nesterov); here, the notebook's own cells
    # turn params/fast.yaml into the config, so the profile and the notebook cannot drift apart.
    fast_profile = load("fast_profile")
    run = fast_profile.build_config("params/fast.yaml", {"DEVICE": "cpu", "STEP_MODE": "auto"})
    config = run.config
    assert (config.batch_size, config.optimizer, config.nesterov, config.scheduler) == (512, "sgd", True, "onecycle")
    assert config.model_options == {"dropout": 0.1} and config.augment is True and config.amp is True
    assert config.patience is None and run.results_dir == REPO_ROOT / "results/fast"
    report = fast_profile.build_config(None, {"DEVICE": "cpu"}).config
    assert (report.optimizer, report.scheduler, report.batch_size, report.step_mode) == ("adam", "step", 64, "eager")
    with pytest.raises(ConfigError, match="unknown parameter 'LABEL_SMOOTHING'"):
        fast_profile.build_config("params/fast.yaml", {"LABEL_SMOOTHING": 0.1})


def test_the_study_page_shows_the_table_the_committed_runs_give():
    """Every number of docs/lecture-models.md's table comes from the committed study and reference runs."""
    table = load("lecture_models").table()
    assert table.count("\n") >= 3, "the study has runs"
    assert table in (REPO_ROOT / "docs" / "lecture-models.md").read_text()


def test_the_readme_shows_the_reference_runs_table_1():
    rows = [line for line in (REPO_ROOT / "reference" / "cpu-jpeg" / "results" / "table1.md").read_text().splitlines()
            if line.startswith("|")]
    readme = (REPO_ROOT / "README.md").read_text()
    assert rows and all(row in readme for row in rows)


@pytest.mark.filterwarnings("ignore::cifar_helpers.data.errors.CIFAR10Warning")  # fake data, by design
def test_a_study_run_stopped_early_is_saved_as_partial_and_goes_on_when_asked(fake_data_dir, tmp_path, monkeypatch):
    study = load("lecture_models")
    lecture = dataclasses.replace(study.LECTURE, out_dir=tmp_path / "study", checkpoint_dir=tmp_path / "checkpoints",
                                  reference_dir=tmp_path / "no-reference-runs")
    monkeypatch.setitem(study.STUDIES, "lecture", lecture)
    args = ["train", "D1", "--epochs", "3", "--data-dir", str(fake_data_dir)]  # no --threads: it would stay set

    study.main([*args, "--stop-after", "1"])
    partial = json.loads((tmp_path / "study" / "D1-e3-partial.json").read_text())
    assert partial["complete"] is False and len(partial["history"]) == 1
    assert "--epochs 3 --stop-after 1 " in partial["command"]
    assert not (tmp_path / "study" / "D1-e3.json").exists()
    assert study.snapshot(lecture) == [], "train's own partial record, with its command, is kept"

    study.main(args)  # resumes from epoch 1's checkpoint
    final = json.loads((tmp_path / "study" / "D1-e3.json").read_text())
    assert final["complete"] is True and [row["epoch"] for row in final["history"]] == [1, 2, 3]
    assert final["history"][0] == partial["history"][0]
    assert [(name, source) for name, source, _ in study.study_records(lecture)] == [("D1", "study (D1-e3.json)")], \
        "the finished run replaces the partial one"
    monkeypatch.setitem(study.CANDIDATES, "D1", dataclasses.replace(study.CANDIDATES["D1"], description="conv 32 | 64"))
    row = study.table(lecture).splitlines()[-1]
    assert row.count("|") == 10 and "conv 32 &#124; 64" in row  # a pipe in a description would split its cell
    # a notebook's reference run, kept in the study after its model's default changed, is not called a study run
    (tmp_path / "study" / "D1-e3.json").write_text(json.dumps({**final, "command": "make run PARAMS=... (01_dnn)"}))
    assert [source for _, source, _ in study.study_records(lecture)] == ["former reference run (D1-e3.json)"]


@pytest.mark.filterwarnings("ignore::cifar_helpers.data.cifar10.CIFAR10Warning")  # fake data, by design
def test_a_candidate_trained_again_from_epoch_1_never_replaces_the_saved_run(fake_data_dir, tmp_path, monkeypatch):
    """Its checkpoint lost (a new machine), a candidate trains again from epoch 1: the saved record of the
    first run, with more epochs, stays as it was, and the tool says what to do."""
    study = load("lecture_models")
    lecture = dataclasses.replace(study.LECTURE, out_dir=tmp_path / "study", checkpoint_dir=tmp_path / "checkpoints",
                                  reference_dir=tmp_path / "no-reference-runs")
    monkeypatch.setitem(study.STUDIES, "lecture", lecture)
    args = ["train", "D1", "--epochs", "3", "--data-dir", str(fake_data_dir)]
    study.main([*args, "--stop-after", "2"])
    saved = tmp_path / "study" / "D1-e3-partial.json"
    before = saved.read_bytes()
    shutil.rmtree(tmp_path / "checkpoints")
    with pytest.raises(SystemExit, match=r"D1-e3-partial.json holds 2 epochs of another run of this candidate "
                                         r"\(epoch 1 differs from this run's\): it is not replaced. Move it aside"):
        study.main([*args, "--stop-after", "1"])  # the same seed, but another run: its timings differ
    assert saved.read_bytes() == before
    saved.rename(tmp_path / "study" / "D1-e3-first-machine.json")  # moved aside, the new run goes on
    study.main([*args, "--stop-after", "2"])
    assert len(json.loads(saved.read_text())["history"]) == 2


@pytest.mark.filterwarnings("ignore::cifar_helpers.data.cifar10.CIFAR10Warning")  # fake data, by design
def test_a_study_run_stopped_with_ctrl_c_keeps_its_epochs_with_the_whole_command(fake_data_dir, tmp_path,
                                                                                  monkeypatch, capsys):
    """Ctrl-C (or kill -INT) during an epoch: the finished ones are saved as partial, labelled with the command
    that goes on with them, thread count included (it is part of the run's record)."""
    import torch

    from cifar_helpers.core.errors import TrainingInterrupted
    from cifar_helpers.engine import train as engine

    study = load("lecture_models")
    lecture = dataclasses.replace(study.LECTURE, out_dir=tmp_path / "study", checkpoint_dir=tmp_path / "checkpoints",
                                  reference_dir=tmp_path / "no-reference-runs")
    monkeypatch.setitem(study.STUDIES, "lecture", lecture)
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)  # the thread count of the test process stays
    real_train_model = engine.train_model

    def stopped_during_epoch_2(*args, **kwargs):
        real_train_model(*args, **{**kwargs, "stop_after": 1})
        raise TrainingInterrupted("Training stopped during epoch 2 of 3; epochs 1-1 are saved in ...")

    monkeypatch.setattr(engine, "train_model", stopped_during_epoch_2)
    argv = ["train", "D1", "--epochs", "3", "--threads", "1", "--data-dir", str(fake_data_dir)]
    assert study.main(argv) == 130
    assert capsys.readouterr().err.startswith("Training stopped during epoch 2 of 3")
    partial = json.loads((tmp_path / "study" / "D1-e3-partial.json").read_text())
    assert partial["complete"] is False and len(partial["history"]) == 1
    assert partial["command"] == ("python benchmarks/lecture_models.py train D1 --epochs 3 --threads 1 --data-dir "
                                  "<the JPEG copy> --device cpu, stopped or still running after epoch 1")
    assert study.snapshot(lecture) == [], "nothing newer to copy"


# ---------------------------------------------------------------- the Custom ResNet study (docs/custom-resnet.md)


@pytest.fixture
def custom_study(tmp_path, monkeypatch):
    """The study tool with the Custom ResNet study's runs, checkpoints and reference runs in tmp_path."""
    study = load("lecture_models")
    custom = dataclasses.replace(study.CUSTOM_RESNET, out_dir=tmp_path / "study",
                                 checkpoint_dir=tmp_path / "checkpoints", reference_dir=tmp_path / "no-reference-runs")
    monkeypatch.setitem(study.STUDIES, "custom-resnet", custom)
    return study, custom


@pytest.mark.filterwarnings("ignore::cifar_helpers.data.cifar10.CIFAR10Warning")  # fake data, by design
def test_a_custom_resnet_candidate_trains_through_the_tool_and_records_its_name_and_command(
        fake_data_dir, tmp_path, custom_study):
    study, custom = custom_study
    threads = torch.get_num_threads()  # the tool sets it for the whole process: keep it as it is
    # no --epochs: the study's screen length; one epoch of it, on 64 images
    study.main(["--study", "custom-resnet", "train", "K4", "--stop-after", "1", "--subset", "64",
                "--threads", str(threads), "--data-dir", str(fake_data_dir)])
    record = json.loads((tmp_path / "study" / "K4-e40-partial.json").read_text())
    assert record["candidate"] == {"name": "K4", "description": "StepLR gamma 0.5"}
    assert record["command"] == ("python benchmarks/lecture_models.py --study custom-resnet train K4 --epochs 40 "
                                 f"--stop-after 1 --subset 64 --threads {threads} --data-dir <the JPEG copy> "
                                 "--device cpu")
    assert record["epochs_planned"] == 40 and len(record["history"]) == 1 and record["complete"] is False
    # the candidate's config override reaches the run, and its options the network
    assert record["params"]["gamma"] == 0.5 and record["params"]["subset"] == [64, 64]
    assert record["params"]["scheduler"] == "step" and record["params"]["optimizer"] == "adam"
    assert (record["architecture"]["bottleneck_factor"], record["architecture"]["dropout"]) == (4, 0.1)
    assert [(name, source) for name, source, _ in study.study_records(custom)] == \
        [("K4", "study (K4-e40-partial.json)")]
    # a GPU run of the same candidate is another run, in another file
    assert (study.run_name("K4", 40, "cuda:0"), study.run_name("K4", 40, "cpu")) == ("K4-e40-cuda", "K4-e40")
    row = study.table(custom).splitlines()[-1]
    assert row.startswith("| K4 | StepLR gamma 0.5 | 1,492,874 | 1 of 40 | - | ") and "| CPU (" in row


@pytest.mark.filterwarnings("ignore::cifar_helpers.data.cifar10.CIFAR10Warning")  # fake data, by design
def test_a_run_with_denormals_flushed_is_another_run_with_its_own_files_and_says_so(
        fake_data_dir, tmp_path, custom_study):
    study, custom = custom_study
    args = ["--study", "custom-resnet", "train", "K2", "--stop-after", "1", "--subset", "64",
            "--data-dir", str(fake_data_dir)]
    study.main(args)
    study.main([*args, "--flush-denormals"])  # beside the plain run: neither resumes nor replaces the other
    plain, flush = (json.loads((tmp_path / "study" / f"K2-e40{tag}-partial.json").read_text())
                    for tag in ("", "-flush"))
    assert "flush_denormals" not in plain["params"] and flush["params"]["flush_denormals"] is True
    assert plain["fingerprint"] != flush["fingerprint"]
    assert flush["command"].endswith("--device cpu --flush-denormals") and len(flush["history"]) == 1
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["K2", "K2-flush"]
    assert [source for _, source, _ in study.study_records(custom)] == \
        ["study (K2-e40-flush-partial.json)", "study (K2-e40-partial.json)"]
    rows = study.table(custom).splitlines()[-2:]
    assert ["denormals flushed" in row for row in rows] == [True, False]
    # snapshot labels a flushed run in progress with the flag that goes on with it
    (tmp_path / "study" / "K2-e40-flush-partial.json").unlink()
    assert [path.name for path in study.snapshot(custom)] == ["K2-e40-flush-partial.json"]
    assert json.loads((tmp_path / "study" / "K2-e40-flush-partial.json").read_text())["command"].endswith(
        "--data-dir <the JPEG copy> --flush-denormals, stopped or still running after epoch 1")


@pytest.mark.filterwarnings("ignore::cifar_helpers.data.cifar10.CIFAR10Warning")  # fake data, by design
def test_fit_measures_a_runs_best_weights_on_both_sets_and_refuses_weights_of_another_epoch(
        fake_data_dir, tmp_path, custom_study, capsys):
    from cifar_helpers.models import build_model

    study, _ = custom_study
    study.main(["--study", "custom-resnet", "train", "K3", "--stop-after", "2", "--subset", "64",
                "--data-dir", str(fake_data_dir)])
    record_path, best = tmp_path / "study" / "K3-e40-partial.json", tmp_path / "checkpoints" / "K3" / "custom_resnet" / "best.pt"
    record = json.loads(record_path.read_text())
    capsys.readouterr()
    study.main(["fit", str(record_path), str(best), "--data-dir", str(fake_data_dir)])
    out = capsys.readouterr().out
    loss_row = min(record["history"], key=lambda row: row["test_loss"])
    assert f"the weights of epoch {loss_row['epoch']} (its lowest test loss)" in out
    assert f"test images:      loss {loss_row['test_loss']:.4f}, accuracy {loss_row['test_acc']:.2%}" in out
    assert "training images:  loss " in out and "training minus test accuracy: " in out
    measured = study.fit(record_path, best, str(fake_data_dir), threads=None)
    assert set(measured) == {"training", "test"} and all(0 <= acc <= 1 for _, acc in measured.values())
    # weights the run never had (a fresh network) are refused, not measured
    fresh = tmp_path / "fresh.pt"
    torch.manual_seed(0)
    torch.save(build_model("custom_resnet", dropout=0.0).state_dict(), fresh)
    with pytest.raises(SystemExit, match="these are not that epoch's weights"):
        study.fit(record_path, fresh, str(fake_data_dir), threads=None)


def test_a_reference_run_counts_as_the_candidate_its_parameters_match_and_shows_its_first_40_epochs(
        tmp_path, monkeypatch):
    """The notebook's 300-epoch run is K0's screen over its first 40 epochs (only the planned length differs);
    one with another gamma is K4's; one with another seed is no candidate's."""
    study = load("lecture_models")
    reference = json.loads((REPO_ROOT / "reference/cpu-jpeg/results/custom_resnet.json").read_text())
    assert study.candidate_of(reference, study.CUSTOM_RESNET) == "K0"
    history = [{**reference["history"][0], "epoch": n, "test_acc": n / 100} for n in range(1, 46)]
    runs = tmp_path / "reference"
    runs.mkdir()
    (runs / "custom_resnet.json").write_text(json.dumps({**reference, "history": history}))
    # 31 epochs of its own: under 40 whatever length the committed run has reached
    (runs / "gamma.json").write_text(json.dumps({**reference, "history": history[:31],
                                                 "params": {**reference["params"], "gamma": 0.5}}))
    (runs / "seed.json").write_text(json.dumps({**reference, "params": {**reference["params"], "seed": 24}}))
    custom = dataclasses.replace(study.CUSTOM_RESNET, out_dir=tmp_path / "none", reference_dir=runs)
    rows = study.table(custom).splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == ["| K0", "| K0", "| K4"]
    assert "| 45 of 300 | 30.00% → 45.00% | 45.00% (45) | -45.47 |" in rows[0] and "reference run (" in rows[0]
    assert "| 40 | 30.00% → 40.00% | 40.00% (40) | -50.47 |" in rows[1]
    assert "reference run, its epochs 1-40 of 300 (" in rows[1]
    assert "| 31 of 40 | " in rows[2] and "gamma.json" in rows[2]


def test_the_custom_resnet_page_shows_the_table_the_committed_runs_give():
    study = load("lecture_models")
    assert study.table(study.CUSTOM_RESNET) in (REPO_ROOT / "docs" / "custom-resnet.md").read_text()


def test_k1_the_widest_bottleneck_still_has_fewer_parameters_than_a_basic_block():
    """K1's reading (inner width = out) keeps the report's claim: fewer parameters and multiply-adds than a
    basic block of the same width, at every stage; its network has the 13.9M parameters its description says."""
    from cifar_helpers.models import bottleneck_claim_holds, build_model, compare_blocks
    from cifar_helpers.models.summary import count_parameters

    k1 = load("lecture_models").CUSTOM_RESNET_CANDIDATES["K1"]
    factor = k1.options["bottleneck_factor"]
    assert factor == 1
    blocks = compare_blocks(bottleneck_factor=factor)
    assert bottleneck_claim_holds(blocks) and (blocks["bottleneck_params"] < blocks["basic_params"]).all()
    assert round(count_parameters(build_model(k1.model, **k1.options)) / 1e6, 1) == 13.9 and "13.9M" in k1.description


def test_unknown_candidates_are_refused_in_one_line_that_names_the_study_to_use(capsys):
    study = load("lecture_models")
    with pytest.raises(SystemExit):
        study.main(["--study", "custom-resnet", "train", "K9", "--data-dir", "unused"])
    assert ("unknown candidate K9 in the custom-resnet study: choose from K0, K1, K2, K3, K4, K5, K6, K7\n"
            in capsys.readouterr().err)
    with pytest.raises(SystemExit):
        study.main(["train", "K1", "--epochs", "40", "--data-dir", "unused"])
    assert "unknown candidate K1 in the lecture study: choose from D0, " in (err := capsys.readouterr().err)
    assert "or give --study custom-resnet for K1\n" in err
    with pytest.raises(SystemExit):
        study.main(["train", "D1", "--data-dir", "unused"])
    assert "the lecture study needs --epochs" in capsys.readouterr().err


def test_sigint_stops_a_study_run_even_when_the_shell_left_it_ignored(monkeypatch, capsys):
    """`cmd &` starts the tool with SIGINT ignored; `kill -INT <pid>` must still stop it, in one line, exit 130."""
    import os
    import signal
    import time

    from cifar_helpers.core.errors import TrainingInterrupted

    study = load("lecture_models")

    def train(*args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # a handler runs at once; an ignored signal lets this end
        except KeyboardInterrupt:  # what the engine does with it
            raise TrainingInterrupted("Training stopped during epoch 4 of 40; epochs 1-3 are saved in ...") from None
        raise AssertionError("SIGINT was ignored")

    monkeypatch.setattr(study, "train", train)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert study.main(["--study", "custom-resnet", "train", "K3", "--data-dir", "unused"]) == 130
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN, "the shell's setting is given back"
    finally:
        signal.signal(signal.SIGINT, previous)
    assert capsys.readouterr().err == "Training stopped during epoch 4 of 40; epochs 1-3 are saved in ...\n"


def test_cost_keeps_each_candidates_fastest_turn(monkeypatch, capsys):
    """On a shared machine other processes only add time: of the turns, the fastest counts (no timing here)."""
    import cifar_helpers.workbook.estimate as estimate

    study = load("lecture_models")
    timings = iter([900.0, 2000.0, 300.0, 1500.0])  # K0, K1, then K0, K1 again
    asked = []
    monkeypatch.setattr(estimate, "epoch_seconds", lambda cfg, device: asked.append(cfg) or next(timings))
    fastest = study.cost(study.CUSTOM_RESNET, ["K0", "K1"], 40, threads=None, rounds=2)
    assert fastest == {"K0": 300.0, "K1": 1500.0}
    assert [cfg.model_options["bottleneck_factor"] for cfg in asked] == [4, 1, 4, 1]
    assert all(cfg.epochs == 40 and cfg.gamma == 0.1 for cfg in asked)
    out = capsys.readouterr().out
    assert "K1: 1,500 s a training epoch on cpu" in out and "16.7 h for 40 epochs" in out


def test_weights_prints_each_stages_decayed_share_for_a_run_state_or_bare_weights(tmp_path, capsys):
    from cifar_helpers.models import build_model

    study = load("lecture_models")
    torch.manual_seed(23)
    weights = build_model("custom_resnet", blocks=(1, 1, 1, 1)).state_dict()
    weights["layer4.0.bn1.weight"][:] = 0.0  # a whole batch norm's channels silenced
    torch.save(weights, tmp_path / "best.pt")
    torch.save({"epoch": 7, "model": weights}, tmp_path / "last.pt")
    assert study.main(["weights", str(tmp_path / "last.pt"), str(tmp_path / "best.pt")]) == 0
    printed = capsys.readouterr().out
    assert "last.pt (after epoch 7)" in printed and "best.pt\n" in printed
    scales = [t.numel() for name, t in weights.items()
              if name.startswith("layer4") and t.dim() == 1 and name.endswith("weight")]
    share = round(100 * weights["layer4.0.bn1.weight"].numel() / sum(scales), 1)
    assert printed.count(f"| layer4 | ") == 2 and printed.count(f" | {sum(scales):,} | {share} |") == 2
    assert printed.count("| fc | 5,120 | 0.0 | 0 | - |") == 2


def test_cpu_denormals_times_a_checkpoint_beside_fresh_weights_and_counts_its_denormals(tmp_path, capsys):
    from cifar_helpers.engine.config import TrainConfig
    from cifar_helpers.engine.train import make_optimizer
    from cifar_helpers.models import build_model

    config = TrainConfig.for_model("dnn", optimizer="adam", lr=1e-3)
    model = build_model("dnn")
    optimizer = make_optimizer(config, model, torch.device("cpu"))
    model(torch.zeros(2, 3, 32, 32)).sum().backward()
    optimizer.step()  # Adam's state exists from the first step on
    weights = model.state_dict()
    first = next(t for t in weights.values() if t.dim() == 2)
    first.view(-1)[:100] = 1e-40  # denormal
    state = optimizer.state_dict()
    moments = [per_param["exp_avg"] for per_param in state["state"].values()]
    moments[0].view(-1)[:30] = 1e-40
    torch.save({"config": config.to_dict(), "epoch": 3, "model": weights, "optimizer": state}, tmp_path / "last.pt")
    bench = load("cpu_denormals")
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    before = [t.clone() for t in bench.optimizer_tensors(saved["optimizer"])]
    bench.trainer(saved, config)(torch.randn(4, 3, 32, 32), torch.arange(4), torch.zeros(()), torch.zeros(()))
    # each round starts from the file's state: a step changes the trainer's copy, not the loaded checkpoint
    assert all(torch.equal(a, b) for a, b in zip(before, bench.optimizer_tensors(saved["optimizer"])))
    threads = torch.get_num_threads()
    try:
        assert bench.main([str(tmp_path / "last.pt"), "--steps", "2", "--rounds", "1"]) == 0
    finally:
        torch.set_num_threads(threads)  # the script runs on one thread: later tests compare with kernels on this many
    row = capsys.readouterr().out.splitlines()[-1].split(" | ")
    assert row[1:3] == ["dnn", "3"] and all(float(seconds) > 0 for seconds in row[3:7])
    total = sum(t.numel() for t in weights.values() if t.is_floating_point())
    in_state = sum(t.numel() for per_param in state["state"].values() for t in per_param.values()
                   if t.dtype == torch.float32)
    # the file's state, not one that the timed steps (which flush some setups' denormals) have changed
    assert row[7] == f"{100 * 100 / total:.3f}%, {100 * 30 / in_state:.3f}% |"


@pytest.mark.filterwarnings("ignore::cifar_helpers.data.cifar10.CIFAR10Warning")  # fake data, by design
def test_cpu_repeat_trains_the_epoch_after_a_checkpoint_and_says_whether_the_record_repeats(
        fake_data, fake_data_dir, tmp_path, capsys):
    from cifar_helpers.engine.config import TrainConfig
    from cifar_helpers.engine.train import train_model

    repeat = load("cpu_repeat")
    cfg = TrainConfig.for_model("dnn", epochs=2, lr=0.01)
    train = dict(device="cpu", results_dir=tmp_path / "results", checkpoint_dir=tmp_path / "ckpt", log=lambda _: None)
    train_model(cfg, fake_data, stop_after=1, **train)
    after_1 = tmp_path / "last-e1.pt"
    shutil.copyfile(tmp_path / "ckpt" / "dnn" / "last.pt", after_1)
    record = train_model(cfg, fake_data, **train)
    results = tmp_path / "results" / "dnn.json"
    data = ["--data-dir", str(fake_data_dir), "--threads", str(torch.get_num_threads())]

    assert repeat.main([str(results), str(after_1), *data]) == 0
    out = capsys.readouterr().out
    assert "epoch 2 from the checkpoint of epoch 1" in out and out.rstrip().endswith("The epoch repeats exactly.")
    assert out.count("| here: CPU (") == 1 and f"| {record['history'][1]['test_loss']:.6g} |" in out

    changed = json.loads(results.read_text())
    changed["history"][1]["test_acc"] += 0.01  # as if another processor had trained it
    results.write_text(json.dumps(changed))
    assert repeat.main([str(results), str(after_1), *data]) == 1
    assert "The epoch differs: another processor or thread count" in capsys.readouterr().out

    after_2 = tmp_path / "ckpt" / "dnn" / "last.pt"
    with pytest.raises(SystemExit, match="records 2 epochs: none after the checkpoint's epoch 2"):
        repeat.main([str(results), str(after_2), *data])
    other = TrainConfig.for_model("dnn", epochs=2, lr=0.02)
    train_model(other, fake_data, stop_after=1,
                **{**train, "results_dir": tmp_path / "other", "checkpoint_dir": tmp_path / "other"})
    with pytest.raises(SystemExit, match="is of run .* but .* records run"):
        repeat.main([str(results), str(tmp_path / "other" / "dnn" / "last.pt"), *data])
