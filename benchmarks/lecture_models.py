"""The lecture-model study: train candidate architectures under the report's lecture protocol.

    python benchmarks/lecture_models.py train D1 D2 --epochs 30 --data-dir /tmp/cifar10-jpeg
    python benchmarks/lecture_models.py train R4 --epochs 100 --stop-after 16 --data-dir /tmp/cifar10-jpeg
    python benchmarks/lecture_models.py table            # the study's table, from the saved runs
    python benchmarks/lecture_models.py snapshot         # save the runs in progress as *-partial.json

The report names no architecture for its DNN, CNN and ResNet (docs/protocol.md).
Each candidate here is one of `cifar_helpers.models` with factory options, and
is trained by the workbook's own engine with the report's lecture protocol
(SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 64, normalisation only,
seed 23, fp32), for `--epochs` epochs, or the first `--stop-after` of them.
Each run writes its full results record to `reference/lecture-models/<candidate>-e<epochs>.json`
(`-partial.json` when it stopped early) and resumes from `checkpoints/lecture-models/`
when interrupted, or run again with a higher `--stop-after`. `table` reads those records, and
the reference runs of the notebooks (reference/cpu-jpeg/results/, matched to a
candidate by the architecture they record), and prints the Markdown table of
docs/lecture-models.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from cifar_helpers.core.files import atomic_write_json  # noqa: E402

OUT_DIR = REPO_ROOT / "reference" / "lecture-models"
REFERENCE_DIR = REPO_ROOT / "reference" / "cpu-jpeg" / "results"  # the notebooks' runs with the chosen models
STUDY_PAGE = REPO_ROOT / "docs" / "lecture-models.md"
CHECKPOINT_DIR = REPO_ROOT / "checkpoints" / "lecture-models"

# The report's numbers each candidate is compared with (report Table 1 and section 2.2).
REPORT = {"dnn": (0.5264, 17), "cnn": (0.7717, 67), "resnet": (0.8085, 11)}


@dataclass(frozen=True)
class Candidate:
    model: str
    options: dict = field(default_factory=dict)
    description: str = ""


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


def result_path(name: str, epochs: int) -> Path:
    return OUT_DIR / f"{name}-e{epochs}.json"


def partial_path(name: str, epochs: int) -> Path:
    return OUT_DIR / f"{name}-e{epochs}-partial.json"


def _label(record: dict, name: str, epochs: int, how: str) -> dict:
    """Name the candidate in its record, and the command that reruns it (`how`: what follows --epochs)."""
    record["candidate"] = {"name": name, "description": CANDIDATES[name].description}
    record["command"] = f"python benchmarks/lecture_models.py train {name} --epochs {epochs} {how}"
    return record


def train(names: list[str], epochs: int, data_dir: str, threads: int | None, device: str = "cpu",
          stop_after: int | None = None) -> None:
    import torch

    from cifar_helpers.engine.config import TrainConfig
    from cifar_helpers.data.cifar10 import load_cifar10
    from cifar_helpers.engine.train import train_model

    if threads:
        torch.set_num_threads(threads)
    data = load_cifar10(data_dir, download=False)
    for name in names:
        candidate = CANDIDATES[name]
        cfg = TrainConfig.for_model(candidate.model, epochs=epochs, model_options=dict(candidate.options))
        stop = f", stopping after epoch {stop_after}" if stop_after else ""
        print(f"== {name}: {candidate.description}; {epochs} epochs{stop}", flush=True)
        record = train_model(cfg, data, device=device, results_dir=OUT_DIR / ".runs" / name,
                             checkpoint_dir=CHECKPOINT_DIR / name, progress="lines", stop_after=stop_after,
                             log=lambda line: print(line, flush=True))
        stop_flag = f"--stop-after {stop_after} " if stop_after else ""
        _label(record, name, epochs, f"{stop_flag}--data-dir <the JPEG copy> --device {device}")
        atomic_write_json((result_path if record["complete"] else partial_path)(name, epochs), record)


def snapshot() -> list[Path]:
    """Copy the runs still in progress (or stopped) into the study as `<candidate>-e<planned>-partial.json`,
    so that what they have measured so far can be committed and cited."""
    written = []
    for path in sorted((OUT_DIR / ".runs").glob("*/*.json")):
        record = json.loads(path.read_text())
        name = path.parent.name
        if record.get("complete") is not False or name not in CANDIDATES:
            continue
        final, partial = result_path(name, record["epochs_planned"]), partial_path(name, record["epochs_planned"])
        saved = len(json.loads(partial.read_text())["history"]) if partial.exists() else 0
        if final.exists() or saved >= len(record["history"]):
            continue  # nothing newer than what train saved, with its exact command
        _label(record, name, record["epochs_planned"],
               f"--data-dir <the JPEG copy>, stopped or still running after epoch {len(record['history'])}")
        written.append(atomic_write_json(partial, record))
    return written


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


def candidate_of(record: dict) -> str | None:
    """The study candidate whose architecture a results file records, if any."""
    from cifar_helpers.models import architecture

    recorded = record.get("architecture")
    if not recorded:
        return None
    for name, candidate in CANDIDATES.items():
        if candidate.model == record["model"] and architecture(candidate.model, **candidate.options) == recorded:
            return name
    return None


def study_records() -> list[tuple[str, str, dict]]:
    """(candidate, where from, record) for every study run and every reference run, in candidate order."""
    found = []
    for path in OUT_DIR.glob("*.json"):
        record = json.loads(path.read_text())
        if path.stem.endswith("-partial") and result_path(record["candidate"]["name"], record["epochs_planned"]).exists():
            continue  # the finished run has replaced it
        # a notebook's reference run kept here after its model's default changed says so by its command
        kind = "former reference run" if record["command"].startswith("make run") else "study"
        found.append((record["candidate"]["name"], f"{kind} ({path.name})", record))
    for path in REFERENCE_DIR.glob("*.json"):
        record = json.loads(path.read_text())
        name = record.get("model") in REPORT and candidate_of(record)
        if name:
            found.append((name, f"reference run ({REFERENCE_DIR.relative_to(REPO_ROOT)}/{path.name})", record))
    order = list(CANDIDATES)
    return sorted(found, key=lambda item: (order.index(item[0]), -len(item[2]["history"])))


def table() -> str:
    rows = ["| candidate | architecture | parameters | epochs run | best test acc (epoch) | lowest test loss (epoch) "
            "| after the lowest loss: highest, last test loss | train acc, last epoch | run |",
            "|---|---|---:|---:|---|---|---|---:|---|"]
    for name, source, record in study_records():
        s = summarize(record)
        epochs = f"{s['epochs']}" + (f" of {s['planned']}" if s["epochs"] != s["planned"] else "")
        after = (f"{s['max_loss_after']:.4f}, {s['last_test_loss']:.4f}" if math.isfinite(s["max_loss_after"])
                 else "(last epoch)")
        rows.append(
            f"| {name} | {CANDIDATES[name].description.replace('|', '&#124;')} "  # a bare | would split the cell
            f"| {record['num_parameters']:,} | {epochs} "
            f"| {100 * s['best_acc']:.2f}% ({s['best_acc_epoch']}) | {s['best_loss']:.4f} ({s['best_loss_epoch']}) "
            f"| {after} | {100 * s['last_train_acc']:.2f}% | {source} |")
    return "\n".join(rows)


TABLE_START = "<!-- the study table: python benchmarks/lecture_models.py table --write -->"
TABLE_END = "<!-- end of the study table -->"


def write_table(page: Path) -> None:
    """Replace the table between the page's two markers with the one the saved runs give now."""
    from cifar_helpers.core.files import atomic_write_text

    text = page.read_text(encoding="utf-8")
    before, start, rest = text.partition(TABLE_START)
    _, end, after = rest.partition(TABLE_END)
    if not start or not end:
        raise SystemExit(f"{page} lacks the markers {TABLE_START!r} and {TABLE_END!r}")
    atomic_write_text(page, f"{before}{TABLE_START}\n{table()}\n{TABLE_END}{after}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("train", help="train candidates under the lecture protocol")
    run.add_argument("names", nargs="+", choices=sorted(CANDIDATES))
    run.add_argument("--epochs", type=int, required=True)
    run.add_argument("--data-dir", required=True, help="CIFAR-10 folder (the JPEG copy here)")
    run.add_argument("--stop-after", type=int, default=None, metavar="N",
                     help="stop after epoch N (a partial run; run again with a higher N to go on)")
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    run.add_argument("--device", default="cpu", help="cpu (the study so far), or cuda on a GPU machine")
    shown = sub.add_parser("table", help="print the study's Markdown table from the saved runs")
    shown.add_argument("--write", action="store_true", help=f"put it into {STUDY_PAGE.relative_to(REPO_ROOT)}")
    sub.add_parser("snapshot", help="save the runs in progress as <candidate>-e<epochs>-partial.json")
    args = parser.parse_args(argv)
    if args.command == "train":
        train(args.names, args.epochs, args.data_dir, args.threads, args.device, args.stop_after)
    elif args.command == "snapshot":
        for path in snapshot():
            print("wrote", path.relative_to(REPO_ROOT))
    elif args.write:
        write_table(STUDY_PAGE)
    else:
        print(table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
