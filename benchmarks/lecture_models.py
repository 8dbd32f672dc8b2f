"""Architecture studies: train candidate readings of the report under its own protocols, and tabulate them.

    python benchmarks/lecture_models.py train D1 D2 --epochs 30 --data-dir /tmp/cifar10-jpeg
    python benchmarks/lecture_models.py train R4 --epochs 100 --stop-after 16 --data-dir /tmp/cifar10-jpeg
    python benchmarks/lecture_models.py table            # the study's table, from the saved runs
    python benchmarks/lecture_models.py snapshot         # save the runs in progress as *-partial.json
    python benchmarks/lecture_models.py --study custom-resnet train K1 --threads 1 --data-dir /tmp/cifar10-jpeg
    python benchmarks/lecture_models.py --study custom-resnet cost --threads 1   # seconds a training epoch
    python benchmarks/lecture_models.py fit <results.json> <its best.pt> --data-dir /tmp/cifar10-jpeg
    python benchmarks/lecture_models.py weights <last.pt or best.pt>   # per stage, weights decayed to zero

Two studies, each a `Study` below (`--study`, default `lecture`):

- `lecture` (docs/lecture-models.md): the report names no architecture for its DNN, CNN and ResNet
  (docs/protocol.md), so candidates D*, C* and R* are trained under the report's lecture protocol (SGD lr 0.1,
  momentum 0.9, weight decay 5e-4, batch 64, normalisation only, seed 23, fp32).
- `custom-resnet` (docs/custom-resnet.md): the report leaves the Custom ResNet's bottleneck width, dropout rate,
  StepLR gamma and the form of Adam's weight decay open; candidates K* are readings of them under the Custom
  ResNet's protocol (Adam 1e-3, weight decay 5e-4, crop and flip, StepLR every 30 epochs, early stopping after
  15), each for the study's screen length (40 epochs: the step at 30 included) unless `--epochs` says otherwise.

Each candidate is one of `cifar_helpers.models` with factory options, plus any TrainConfig overrides, and is
trained by the workbook's own engine for `--epochs` epochs, or the first `--stop-after` of them. Each run
writes its full results record to the study's folder, `reference/lecture-models/` or `reference/custom-resnet/`,
as `<candidate>-e<epochs>.json` (`-partial.json` when it stopped early, at `--stop-after` or by Ctrl-C or
`kill -INT`, with the epochs finished) and resumes from the same folder under `checkpoints/` when interrupted, or
run again with a higher `--stop-after`; `snapshot` saves what a run still going has finished so far. `table`
reads those records, and the notebooks' reference runs (reference/cpu-jpeg/results/,
matched to a candidate by the architecture and training parameters they record), and prints the Markdown
table of the study's page; `table --write` puts it there.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cifar_helpers.core.files import atomic_write_json  # noqa: E402
from cifar_helpers.core.paths import shown_path  # noqa: E402

REFERENCE_DIR = REPO_ROOT / "reference" / "cpu-jpeg" / "results"  # the notebooks' runs with the chosen models
SCRIPT = "python benchmarks/lecture_models.py"
DEFAULT_STUDY = "lecture"  # its commands name no --study, as they did before there were two
# A run's length, its evaluation split and its model options (compared as the whole architecture instead)
# do not make a reference run another candidate.
NOT_COMPARED = ("epochs", "eval_batch_size", "model_options")


@dataclass(frozen=True)
class Candidate:
    model: str
    options: dict = field(default_factory=dict)  # the model factory's keyword options
    description: str = ""
    config: dict = field(default_factory=dict)  # TrainConfig overrides of the model's protocol (gamma, ...)

    def train_config(self, epochs: int, **extra):
        """The model's protocol (engine.config) with this candidate's options and overrides, for `epochs`."""
        from cifar_helpers.engine.config import TrainConfig

        return TrainConfig.for_model(self.model, epochs=epochs, model_options=dict(self.options),
                                     **self.config, **extra)


class Row(NamedTuple):
    """One line of a study's table: a candidate's run, where it comes from, and its summary."""

    name: str
    source: str
    record: dict
    summary: dict


class Column(NamedTuple):
    """One column of a study's table: its header, its Markdown alignment, and how a row fills it."""

    header: str
    align: str  # the Markdown separator: "---" or "---:"
    cell: Callable[[Row, "Study"], str]


@dataclass(frozen=True)
class Study:
    """A set of candidates, where their runs, checkpoints and table go, and what the table shows."""

    name: str  # --study
    candidates: dict[str, Candidate]
    out_dir: Path  # the runs' records (<candidate>-e<epochs>.json); .runs/ the engine's files while they train
    checkpoint_dir: Path
    page: Path  # docs/ page whose table `table --write` replaces
    columns: tuple[Column, ...]
    # The study's run length, when it has one: the default --epochs, and a reference run planned longer
    # is also shown over its first `screen_epochs` epochs (the same run up to there, if nothing else differs).
    screen_epochs: int | None = None
    reference_dir: Path = REFERENCE_DIR

    @property
    def command(self) -> str:
        return SCRIPT if self.name == DEFAULT_STUDY else f"{SCRIPT} --study {self.name}"

    @property
    def models(self) -> set[str]:
        return {candidate.model for candidate in self.candidates.values()}

    def result_path(self, name: str, epochs: int, device: str = "cpu", flush: bool = False) -> Path:
        return self.out_dir / f"{run_name(name, epochs, device, flush)}.json"

    def partial_path(self, name: str, epochs: int, device: str = "cpu", flush: bool = False) -> Path:
        return self.out_dir / f"{run_name(name, epochs, device, flush)}-partial.json"

    @property
    def table_start(self) -> str:
        return f"<!-- the study table: {self.command} table --write -->"


TABLE_END = "<!-- end of the study table -->"


FLUSHED = "-flush"  # a run with the engine's FLUSH_DENORMALS: its files and checkpoints are its own


def run_name(name: str, epochs: int, device: str, flush: bool = False) -> str:
    """`K1-e40` on the CPU, `K1-e40-cuda` on a GPU, `K1-e40-flush` with denormals flushed: one candidate's runs
    on two devices, or with other numerics, are two runs."""
    device_type = device.split(":")[0]
    return f"{name}-e{epochs}" + ("" if device_type == "cpu" else f"-{device_type}") + (FLUSHED if flush else "")


def flushed(record: dict) -> bool:
    """Whether a run zeroed its denormal numbers after every step (absent from records before the setting)."""
    return bool(record["params"].get("flush_denormals", False))


# ------------------------------------------------------------------------------------------- the lecture study

CANDIDATES: dict[str, Candidate] = {
    # DNN: fully connected on the flattened 3×32×32 image.
    "D0": Candidate("dnn", {"hidden": (1024, 512), "batch_norm": False}, "3072-1024-512-10, ReLU (the first inference)"),
    "D1": Candidate("dnn", {"hidden": (512, 256), "batch_norm": True},
                    "3072-512-256-10, Linear-BatchNorm1d-ReLU"),
    "D2": Candidate("dnn", {"hidden": (1024, 512), "batch_norm": True},
                    "3072-1024-512-10, Linear-BatchNorm1d-ReLU"),
    "D3": Candidate("dnn", {"hidden": (512, 256), "batch_norm": False, "activation": "sigmoid"},
                    "3072-512-256-10, sigmoid"),
    "D4": Candidate("dnn", {"hidden": (1024, 512, 256), "batch_norm": True},
                    "3072-1024-512-256-10, Linear-BatchNorm1d-ReLU"),
    "D5": Candidate("dnn", {"hidden": (512, 256), "batch_norm": False, "activation": "tanh"},
                    "3072-512-256-10, tanh"),
    # CNN: 3×3 convolutions in three max-pooled blocks, two linear layers, no skips.
    "C0": Candidate("cnn", {"batch_norm": False}, "conv 32,32 | 64,64 | 128, fc 256, ReLU (the first inference)"),
    "C1": Candidate("cnn", {"batch_norm": True}, "as C0 with BatchNorm2d after every convolution"),
    "C2": Candidate("cnn", {"batch_norm": True, "dropout": 0.5}, "as C1 with dropout 0.5 before the last linear"),
    "C3": Candidate("cnn", {"widths": (64, 128, 256), "batch_norm": True},
                    "as C1, twice as wide: conv 64,64 | 128,128 | 256, BatchNorm, fc 256"),
    # ResNet: a 3×3 stem and three stages of basic blocks.
    "R0": Candidate("resnet", {"widths": (32, 64, 128), "batch_norm": False},
                    "32-64-128, 2 blocks a stage, no BN, zero-init residuals (the first inference)"),
    "R1": Candidate("resnet", {"widths": (16, 32, 64), "batch_norm": True},
                    "16-32-64, 2 blocks a stage, BatchNorm after every convolution"),
    "R2": Candidate("resnet", {"widths": (16, 32, 64), "batch_norm": False},
                    "16-32-64, 2 blocks a stage, no BN, zero-init residuals"),
    "R3": Candidate("resnet", {"widths": (32, 64, 128), "batch_norm": True},
                    "32-64-128, 2 blocks a stage, BatchNorm after every convolution"),
    "R4": Candidate("resnet", {"widths": (64, 128, 256), "batch_norm": True, "stem": "7x7"},
                    "the Custom ResNet without its fourth stage: 7x7 stride-2 stem, 64-128-256, 2 basic blocks "
                    "a stage, BatchNorm"),
}


def _description(row: Row, study: Study) -> str:
    return study.candidates[row.name].description.replace("|", "&#124;")  # a bare | would split the cell


def _epochs(row: Row, study: Study) -> str:
    s = row.summary
    return f"{s['epochs']}" + (f" of {s['planned']}" if s["epochs"] != s["planned"] else "")


def _after_lowest(row: Row, study: Study) -> str:
    s = row.summary
    return (f"{s['max_loss_after']:.4f}, {s['last_test_loss']:.4f}" if math.isfinite(s["max_loss_after"])
            else "(last epoch)")


COMMON = {
    "parameters": Column("parameters", "---:", lambda row, study: f"{row.record['num_parameters']:,}"),
    "epochs": Column("epochs run", "---:", _epochs),
    "best acc": Column("best test acc (epoch)", "---",
                       lambda row, study: f"{100 * row.summary['best_acc']:.2f}% ({row.summary['best_acc_epoch']})"),
    "lowest loss": Column("lowest test loss (epoch)", "---",
                          lambda row, study: f"{row.summary['best_loss']:.4f} ({row.summary['best_loss_epoch']})"),
    "train acc": Column("train acc, last epoch", "---:",
                        lambda row, study: f"{100 * row.summary['last_train_acc']:.2f}%"),
    "run": Column("run", "---", lambda row, study: row.source),
}

LECTURE = Study(
    name="lecture", candidates=CANDIDATES, out_dir=REPO_ROOT / "reference" / "lecture-models",
    checkpoint_dir=REPO_ROOT / "checkpoints" / "lecture-models", page=REPO_ROOT / "docs" / "lecture-models.md",
    columns=(Column("candidate", "---", lambda row, study: row.name), Column("architecture", "---", _description),
             COMMON["parameters"], COMMON["epochs"], COMMON["best acc"], COMMON["lowest loss"],
             Column("after the lowest loss: highest, last test loss", "---", _after_lowest),
             COMMON["train acc"], COMMON["run"]),
)

# ------------------------------------------------------------------------------------- the Custom ResNet study

# K0 names every open reading explicitly, so that it stays the notebooks' first reading even if a default moves.
NOTEBOOKS_READING = {"bottleneck_factor": 4, "dropout": 0.1}

CUSTOM_RESNET_CANDIDATES: dict[str, Candidate] = {
    "K0": Candidate("custom_resnet", NOTEBOOKS_READING,
                    "the notebooks' reading: inner width out/4, dropout 0.1, StepLR gamma 0.1", {"gamma": 0.1}),
    # 11C² weights a block against a basic block's 18C²: the report's "fewer parameters" holds here too.
    "K1": Candidate("custom_resnet", {**NOTEBOOKS_READING, "bottleneck_factor": 1},
                    "inner width = out (factor 1): 13.9M parameters; a block still has fewer than a basic block "
                    "(11C² against 18C²)",
                    {"gamma": 0.1}),
    "K2": Candidate("custom_resnet", {**NOTEBOOKS_READING, "bottleneck_factor": 2},
                    "inner width out/2 (factor 2)", {"gamma": 0.1}),
    "K3": Candidate("custom_resnet", {**NOTEBOOKS_READING, "dropout": 0.0}, "no dropout", {"gamma": 0.1}),
    "K4": Candidate("custom_resnet", NOTEBOOKS_READING, "StepLR gamma 0.5", {"gamma": 0.5}),
    "K5": Candidate("custom_resnet", {**NOTEBOOKS_READING, "dropout": 0.3}, "dropout 0.3", {"gamma": 0.1}),
    # After K3: a rate below 0.1 keeps the report's dropout layer in every block (docs/custom-resnet.md).
    "K6": Candidate("custom_resnet", {**NOTEBOOKS_READING, "dropout": 0.05}, "dropout 0.05", {"gamma": 0.1}),
    # After the dead weights (docs/custom-resnet.md): Adam's L2 term drives weights with small gradients to zero.
    "K7": Candidate("custom_resnet", NOTEBOOKS_READING, "AdamW: weight decay 5e-4 decoupled, not Adam's L2 term",
                    {"gamma": 0.1, "optimizer": "adamw"}),
}


def _report_row(row: Row):
    from cifar_helpers.models.specs import SPECS

    return SPECS[row.record["model"]].report


def _around_the_step(row: Row, study: Study) -> str:
    """Test accuracy at the last epoch before StepLR's first step, and the best after it."""
    params, history = row.record["params"], row.record["history"]
    step = params["step_size"] if params.get("scheduler") == "step" else None
    if step is None or len(history) < step:
        return "-"
    before = f"{100 * history[step - 1]['test_acc']:.2f}%"
    after = [r["test_acc"] for r in history[step:]]
    return before + (f" → {100 * max(after):.2f}%" if after else "")


def _against_the_report(row: Row, study: Study) -> str:
    return f"{100 * row.summary['best_acc'] - _report_row(row).acc_pct:+.2f}"


def _device(row: Row, study: Study) -> str:
    from cifar_helpers.engine.record import device_names

    sessions = [{**span, "last_epoch": min(span["last_epoch"], row.summary["epochs"])}
                for span in row.record.get("sessions") or [] if span["first_epoch"] <= row.summary["epochs"]]
    name = device_names(sessions) if sessions else row.record.get("device_name", "?")
    mode = row.record["params"].get("step_mode", "eager")
    return name + ("" if mode == "eager" else f", {mode}") + (", denormals flushed" if flushed(row.record) else "")


def _custom_resnet_columns() -> tuple[Column, ...]:
    from cifar_helpers.engine.config import PROTOCOLS
    from cifar_helpers.models.specs import SPECS

    spec = SPECS["custom_resnet"]
    target, step = spec.report, PROTOCOLS[spec.protocol]["step_size"]
    return (Column("candidate", "---", lambda row, study: row.name), Column("reading", "---", _description),
            COMMON["parameters"], COMMON["epochs"],
            Column(f"test acc: epoch {step}, best after StepLR's step", "---", _around_the_step),
            COMMON["best acc"],
            Column(f"best acc against the report's {target.acc_pct:.2f}% (pts)", "---:", _against_the_report),
            COMMON["lowest loss"], COMMON["train acc"], Column("device", "---", _device), COMMON["run"])


CUSTOM_RESNET = Study(
    name="custom-resnet", candidates=CUSTOM_RESNET_CANDIDATES, out_dir=REPO_ROOT / "reference" / "custom-resnet",
    checkpoint_dir=REPO_ROOT / "checkpoints" / "custom-resnet", page=REPO_ROOT / "docs" / "custom-resnet.md",
    columns=_custom_resnet_columns(), screen_epochs=40,  # StepLR's first step, after epoch 30, included
)

STUDIES = {study.name: study for study in (LECTURE, CUSTOM_RESNET)}


# ------------------------------------------------------------------------------------------------ the runs

def _label(study: Study, record: dict, name: str, epochs: int, how: str) -> dict:
    """Name the candidate in its record, and the command that reruns it (`how`: what follows --epochs)."""
    record["candidate"] = {"name": name, "description": study.candidates[name].description}
    record["command"] = f"{study.command} train {name} --epochs {epochs} {how}"
    return record


def _saved_epochs(path: Path, record: dict) -> int:
    """How many epochs of `record`'s run `path` holds (0 if none), or raise when it holds another run's: a
    candidate trained again from epoch 1 (its checkpoint lost, another processor) never replaces a saved run."""
    if not path.exists():
        return 0
    saved, new = json.loads(path.read_text())["history"], record["history"]
    common = min(len(saved), len(new))
    if saved[:common] != new[:common]:
        differs = next(i for i in range(common) if saved[i] != new[i]) + 1
        raise SystemExit(f"{shown_path(path)} holds {len(saved)} epochs of another run of this candidate (epoch "
                         f"{differs} differs from this run's): it is not replaced. Move it aside to keep both, "
                         f"then run the same command again (this run's epochs are in its checkpoint).")
    return len(saved)


def _save_partial(study: Study, name: str, record: dict, how: str) -> Path | None:
    """Write a candidate's unfinished `record` as `<candidate>-e<planned>-partial.json`, labelled with the command
    that goes on with it (`how`, what follows --epochs), unless the study holds as many epochs of it already."""
    planned = record["epochs_planned"]
    final, partial = (path(name, planned, record["device"], flushed(record))
                      for path in (study.result_path, study.partial_path))
    if record.get("complete") is not False or final.exists() or _saved_epochs(partial, record) >= len(record["history"]):
        return None
    _label(study, record, name, planned, f"{how}, stopped or still running after epoch {len(record['history'])}")
    return atomic_write_json(partial, record)


def train(study: Study, names: list[str], epochs: int, data_dir: str, threads: int | None, device: str = "cpu",
          stop_after: int | None = None, step_mode: str = "eager", subset: int | None = None,
          flush: bool = False) -> None:
    import torch

    from cifar_helpers.core.errors import TrainingInterrupted
    from cifar_helpers.data.cifar10 import load_cifar10
    from cifar_helpers.engine.record import results_file
    from cifar_helpers.engine.train import train_model

    if threads:
        torch.set_num_threads(threads)
    data = load_cifar10(data_dir, download=False)
    # Only what differs from the defaults enters the config, so the lecture runs keep their fingerprints.
    extra = {**({"step_mode": step_mode} if step_mode != "eager" else {}), **({"subset": subset} if subset else {}),
             **({"flush_denormals": True} if flush else {})}
    for name in names:
        candidate = study.candidates[name]
        cfg = candidate.train_config(epochs, **extra)
        stop = f", stopping after epoch {stop_after}" if stop_after else ""
        print(f"== {name}: {candidate.description}; {epochs} epochs{stop}", flush=True)
        flags = "".join(f"--{flag} {value} " for flag, value in
                        (("stop-after", stop_after), ("subset", subset), ("threads", threads)) if value)
        how = f"{flags}--data-dir <the JPEG copy> --device {device}" + (
            f" --step-mode {step_mode}" if step_mode != "eager" else "") + (" --flush-denormals" if flush else "")
        folder = name + (FLUSHED if flush else "")  # the run's own progress and checkpoint folders
        progress = results_file(study.out_dir / ".runs" / folder, cfg.model)  # written after every epoch
        try:
            record = train_model(cfg, data, device=device, results_dir=progress.parent,
                                 checkpoint_dir=study.checkpoint_dir / folder, progress="lines", stop_after=stop_after,
                                 log=lambda line: print(line, flush=True))
        except TrainingInterrupted:
            if progress.exists():  # what the finished epochs measured, with the command that goes on
                _save_partial(study, name, json.loads(progress.read_text()), how)
            raise
        _label(study, record, name, epochs, how)
        where = study.result_path if record["complete"] else study.partial_path
        target = where(name, epochs, record["device"], flush)
        if _saved_epochs(target, record) < len(record["history"]):
            atomic_write_json(target, record)


def snapshot(study: Study = LECTURE) -> list[Path]:
    """Copy the runs still in progress (or stopped) into the study as `<candidate>-e<planned>-partial.json`,
    so that what they have measured so far can be committed and cited."""
    written = []
    for path in sorted((study.out_dir / ".runs").glob("*/*.json")):
        record = json.loads(path.read_text())
        name = path.parent.name.removesuffix(FLUSHED)
        if name in study.candidates:  # nothing is written where train saved as much, with its exact command
            how = "--data-dir <the JPEG copy>" + (" --flush-denormals" if flushed(record) else "")
            written.append(_save_partial(study, name, record, how))
    return [path for path in written if path is not None]


def cost(study: Study, names: list[str], epochs: int, threads: int | None, device: str = "cpu",
         rounds: int = 3) -> dict[str, float]:
    """Seconds a training epoch of each candidate costs here, from a few timed steps (workbook.estimate).

    The candidates take turns for `rounds` rounds and each keeps its fastest: on a shared machine other
    processes only ever add time, and taking turns spreads a busy spell over all of them."""
    import torch

    from cifar_helpers.workbook.estimate import epoch_seconds

    if threads:
        torch.set_num_threads(threads)
    fastest: dict[str, float] = {}
    for _ in range(rounds):
        for name in names:
            seconds = epoch_seconds(study.candidates[name].train_config(epochs), torch.device(device))
            fastest[name] = min(seconds, fastest.get(name, math.inf))
    for name, seconds in fastest.items():
        print(f"{name}: {seconds:,.0f} s a training epoch on {device} ({torch.get_num_threads()} thread(s)), "
              f"{seconds * epochs / 3600:.1f} h for {epochs} epochs, evaluation not included", flush=True)
    return fastest


# -------------------------------------------------------------------------------------------------- the fit

def fit(record_path: Path, weights: Path, data_dir: str, threads: int | None) -> dict[str, tuple[float, float]]:
    """Loss and accuracy of a run's best weights on its training images and on its test images, both as the
    test images are seen (no crop or flip, dropout off): how closely the network fits what it trained on.

    A history's train accuracy is measured on cropped, flipped images with dropout on, while the weights change;
    this measures one set of weights on both sets alike. The weights must give the record's test numbers at its
    lowest-loss epoch (checkpoint.BEST holds that epoch's weights), or they are not that run's."""
    import torch

    from cifar_helpers.data.batches import DeviceData
    from cifar_helpers.data.cifar10 import load_cifar10, subset
    from cifar_helpers.engine.config import TrainConfig
    from cifar_helpers.engine.record import best_points
    from cifar_helpers.engine.train import evaluate
    from cifar_helpers.models import build_model

    if threads:
        torch.set_num_threads(threads)
    record = json.loads(Path(record_path).read_text())
    cfg = TrainConfig.from_params(record["params"])
    data = load_cifar10(data_dir, download=False)
    if cfg.subset is not None:
        data = subset(data, *cfg.subset, seed=cfg.seed)  # as the engine does, and so the same normalisation
    model = build_model(cfg.model, **cfg.model_options)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    sets = {"training": (data.train_images, data.train_labels), "test": (data.test_images, data.test_labels)}
    measured = {}
    for name, (images, labels) in sets.items():  # evaluate() reads a DeviceData's test set: put each set there
        seen = DeviceData(data.train_images[:1], data.train_labels[:1], images, labels, *data.normalization,
                          device=torch.device("cpu"))
        loss, acc, _ = evaluate(model, seen, cfg)
        measured[name] = (loss, acc)
    best = best_points(record)
    loss, acc = measured["test"]
    if not (math.isclose(loss, best.test_loss, abs_tol=1e-3) and math.isclose(acc, best.acc_at_loss_epoch,
                                                                                abs_tol=2.5e-4)):
        raise SystemExit(f"{shown_path(Path(weights))} gives test loss {loss:.4f} and accuracy {acc:.2%}, but "
                         f"{shown_path(Path(record_path))} recorded {best.test_loss:.4f} and "
                         f"{best.acc_at_loss_epoch:.2%} at its lowest-loss epoch {best.loss_epoch}: "
                         "these are not that epoch's weights")
    print(f"{shown_path(Path(record_path))}, the weights of epoch {best.loss_epoch} (its lowest test loss), "
          f"no crop or flip, dropout off, {torch.get_num_threads()} thread(s):")
    for name, (loss, acc) in measured.items():
        print(f"  {name + ' images:':17} loss {loss:.4f}, accuracy {acc:.2%}")
    gap = (measured["training"][1] - measured["test"][1]) * 100
    print(f"  training minus test accuracy: {gap:+.2f} points", flush=True)
    return measured


def weights(paths: list[Path]) -> None:
    """Print, per checkpoint, the share of each stage's weights and batch-norm scales decayed to zero."""
    from cifar_helpers.engine import checkpoint
    from cifar_helpers.models.summary import decayed_weights

    for path in paths:
        saved = checkpoint.load(path)
        state = saved.get("model", saved)  # last.pt holds the run's whole state, best.pt only the weights
        epoch = f" (after epoch {saved['epoch']})" if "epoch" in saved else ""
        table = decayed_weights(state)
        print(f"{shown_path(path)}{epoch}\n\n| stage | " + " | ".join(table.columns) + " |\n|---|"
              + "---:|" * len(table.columns))
        for stage, row in table.iterrows():
            counts = [f"{int(row[column]):,}" for column in ("weights", "batch-norm scales")]
            shares = ["-" if math.isnan(row[column]) else f"{row[column]:.1f}"
                      for column in ("decayed weights (%)", "decayed scales (%)")]
            print(f"| {stage} | {counts[0]} | {shares[0]} | {counts[1]} | {shares[1]} |")
        print()


# ------------------------------------------------------------------------------------------------ the table

def summarize(record: dict) -> dict:
    """The study's row for one run: peak, where it was, and what came after."""
    history = record["history"]
    losses = [row["test_loss"] for row in history]
    accs = [row["test_acc"] for row in history]
    finite = [i for i, v in enumerate(losses) if math.isfinite(v)]
    loss_i = min(finite, key=losses.__getitem__) if finite else None
    acc_i = max(range(len(accs)), key=accs.__getitem__)
    after = losses[loss_i + 1:] if loss_i is not None else []
    return {
        "epochs": len(history), "planned": record.get("epochs_planned", record["params"]["epochs"]),
        "best_acc": accs[acc_i], "best_acc_epoch": acc_i + 1,
        "best_loss": losses[loss_i] if loss_i is not None else math.nan,
        "best_loss_epoch": loss_i + 1 if loss_i is not None else None,
        "last_test_loss": history[-1]["test_loss"], "max_loss_after": max(after) if after else math.nan,
        "last_train_acc": history[-1]["train_acc"],
    }


def candidate_of(record: dict, study: Study = LECTURE) -> str | None:
    """The study candidate whose architecture and training parameters a results file records, if any."""
    from cifar_helpers.models import architecture

    recorded, params = record.get("architecture"), record.get("params") or {}
    if not recorded:
        return None
    for name, candidate in study.candidates.items():
        if candidate.model != record["model"] or architecture(candidate.model, **candidate.options) != recorded:
            continue
        config = candidate.train_config(params.get("epochs", 1)).to_dict()
        # a key an older record lacks did not exist then: it had the default
        if all(params[key] == value for key, value in config.items() if key in params and key not in NOT_COMPARED):
            return name
    return None


def study_records(study: Study = LECTURE) -> list[tuple[str, str, dict]]:
    """(candidate, where from, record) for every study run and every reference run, in candidate order.

    With a screen length, a reference run planned longer also appears over its first `screen_epochs` epochs:
    the candidate's screen, if nothing but the planned length differs (candidate_of checks the rest)."""
    found = []
    for path in study.out_dir.glob("*.json"):
        record = json.loads(path.read_text())
        if path.stem.endswith("-partial") and study.result_path(record["candidate"]["name"], record["epochs_planned"],
                                                                 record.get("device", "cpu"), flushed(record)).exists():
            continue  # the finished run has replaced it
        # a notebook's reference run kept here after its model's default changed says so by its command
        kind = "former reference run" if record["command"].startswith("make run") else "study"
        found.append((record["candidate"]["name"], f"{kind} ({path.name})", record))
    screen = study.screen_epochs
    for path in study.reference_dir.glob("*.json"):
        record = json.loads(path.read_text())
        name = record.get("model") in study.models and candidate_of(record, study)
        if not name:
            continue
        shown = shown_path(path)
        planned = record.get("epochs_planned", record["params"]["epochs"])
        if screen and planned > screen:
            first = {**record, "history": record["history"][:screen], "epochs_planned": screen}
            found.append((name, f"reference run, its epochs 1-{screen} of {planned} ({shown})", first))
            if len(record["history"]) <= screen:
                continue  # the row above holds all it has
        found.append((name, f"reference run ({shown})", record))
    order = list(study.candidates)
    return sorted(found, key=lambda item: (order.index(item[0]), -len(item[2]["history"]), item[1]))


def table(study: Study = LECTURE) -> str:
    rows = ["| " + " | ".join(column.header for column in study.columns) + " |",
            "|" + "|".join(column.align for column in study.columns) + "|"]
    for name, source, record in study_records(study):
        row = Row(name, source, record, summarize(record))
        rows.append("| " + " | ".join(column.cell(row, study) for column in study.columns) + " |")
    return "\n".join(rows)


def write_table(study: Study) -> None:
    """Replace the table between the page's two markers with the one the saved runs give now."""
    from cifar_helpers.core.files import atomic_write_text

    page = study.page
    text = page.read_text(encoding="utf-8")
    before, start, rest = text.partition(study.table_start)
    _, end, after = rest.partition(TABLE_END)
    if not start or not end:
        raise SystemExit(f"{page} lacks the markers {study.table_start!r} and {TABLE_END!r}")
    atomic_write_text(page, f"{before}{study.table_start}\n{table(study)}\n{TABLE_END}{after}")


def _until_interrupted(run: Callable[[], None]) -> str:
    """Run `run`; Ctrl-C or `kill -INT` stops it and returns the engine's one-line message ("" if it ended).
    SIGINT is made to raise even when a shell started the tool in the background with `&`, which leaves SIGINT
    ignored; the engine keeps every finished epoch in its checkpoint."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run()
    except KeyboardInterrupt as stop:
        return str(stop) or "Interrupted."
    finally:
        signal.signal(signal.SIGINT, previous)
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", choices=sorted(STUDIES), default=DEFAULT_STUDY,
                        help="lecture (docs/lecture-models.md, the default) or custom-resnet (docs/custom-resnet.md)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("train", help="train candidates under their model's protocol")
    run.add_argument("names", nargs="+", metavar="CANDIDATE")
    run.add_argument("--epochs", type=int, default=None,
                     help="epochs planned (required for the lecture study; the custom-resnet study's default: 40)")
    run.add_argument("--data-dir", required=True, help="CIFAR-10 folder (the JPEG copy here)")
    run.add_argument("--stop-after", type=int, default=None, metavar="N",
                     help="stop after epoch N (a partial run; run again with a higher N to go on)")
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    run.add_argument("--device", default="cpu", help="cpu (the studies so far), or cuda on a GPU machine")
    run.add_argument("--step-mode", default="eager", help="the engine's step (engine.fast.STEP_MODES; cuda_graph "
                                                          "on a GPU once benchmarks/graph_check.py passed)")
    run.add_argument("--subset", type=int, default=None, metavar="N",
                     help="train and test on N images each (a smoke run of the tool, not a study run)")
    run.add_argument("--flush-denormals", action="store_true",
                     help="the engine's FLUSH_DENORMALS: zero what decays below float32's normal range after every "
                          "step (3x a late Custom ResNet step on the CPU); another run, in files named -flush")
    priced = sub.add_parser("cost", help="seconds a training epoch costs here, per candidate, from a few steps")
    priced.add_argument("names", nargs="*", metavar="CANDIDATE", help="default: every candidate of the study")
    priced.add_argument("--epochs", type=int, default=None, help="for the total (default: the screen length)")
    priced.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    priced.add_argument("--device", default="cpu")
    priced.add_argument("--rounds", type=int, default=3, help="turns each candidate takes; the fastest counts")
    shown = sub.add_parser("table", help="print the study's Markdown table from the saved runs")
    shown.add_argument("--write", action="store_true", help="put it into the study's page (docs/)")
    sub.add_parser("snapshot", help="save the runs in progress as <candidate>-e<epochs>-partial.json")
    fitted = sub.add_parser("fit", help="a run's best weights on its training and test images, unaugmented")
    fitted.add_argument("record", type=Path, help="the run's results file")
    fitted.add_argument("weights", type=Path, help="its best.pt (the checkpoint folder's)")
    fitted.add_argument("--data-dir", required=True, help="CIFAR-10 folder (the JPEG copy here)")
    fitted.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    decay = sub.add_parser("weights", help="per stage, the share of a checkpoint's weights decayed to zero")
    decay.add_argument("checkpoints", nargs="+", type=Path, help="a run's last.pt or best.pt")
    args = parser.parse_args(argv)
    study = STUDIES[args.study]
    names = getattr(args, "names", None) or list(study.candidates)
    unknown = [name for name in names if name not in study.candidates]
    if unknown:
        elsewhere = {other.name for other in STUDIES.values() for name in unknown if name in other.candidates}
        hint = f", or give --study {' or '.join(sorted(elsewhere))} for {', '.join(unknown)}" if elsewhere else ""
        parser.error(f"unknown candidate {', '.join(unknown)} in the {study.name} study: "
                     f"choose from {', '.join(study.candidates)}{hint}")
    if args.command in ("train", "cost"):
        args.epochs = args.epochs or study.screen_epochs
        if args.epochs is None:
            parser.error(f"the {study.name} study needs --epochs")
    if args.command == "train":
        stopped = _until_interrupted(lambda: train(study, names, args.epochs, args.data_dir, args.threads,
                                                   args.device, args.stop_after, args.step_mode, args.subset,
                                                   args.flush_denormals))
        if stopped:
            print(stopped, file=sys.stderr)
            return 130
    elif args.command == "cost":
        cost(study, names, args.epochs, args.threads, args.device, args.rounds)
    elif args.command == "fit":
        fit(args.record, args.weights, args.data_dir, args.threads)
    elif args.command == "weights":
        weights(args.checkpoints)
    elif args.command == "snapshot":
        for path in snapshot(study):
            print("wrote", shown_path(path))
    elif args.write:
        write_table(study)
    else:
        print(table(study))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
