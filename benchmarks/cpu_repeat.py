"""Does this machine repeat a recorded CPU run? Train one epoch from a checkpoint of it, compare with the record.

    python benchmarks/cpu_repeat.py RESULTS CHECKPOINT --data-dir DIR [--threads 1]

RESULTS is a run's results file, CHECKPOINT a `last.pt` of the same run after some epoch e (a committed one, say:
`git show <commit>:reference/cpu-jpeg/resume/resnet/last.pt > /tmp/last.pt`). The engine trains epoch e + 1 from
it in a scratch folder, on the CPU with `--threads` threads, and the tool compares that epoch's losses, accuracies
and learning rate with the record's epoch e + 1, beside the setup that trained it (its `sessions`). A seeded CPU
run repeats its numbers exactly with the same thread count on the same kind of processor; on another, PyTorch's
kernels round otherwise and the difference grows over the epoch. It exits with 0 when the epoch repeats, 1 when not.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

COMPARED = ("train_loss", "train_acc", "test_loss", "test_acc", "lr")  # not the timings


def repeat(results: Path, last: Path, data_dir: str, threads: int | None) -> bool:
    """Train the epoch after `last`'s, print it beside the record's, and say whether they are the same."""
    import torch

    from cifar_helpers.core.paths import shown_path
    from cifar_helpers.data.cifar10 import load_cifar10
    from cifar_helpers.engine import checkpoint
    from cifar_helpers.engine.config import TrainConfig
    from cifar_helpers.engine.device import device_name, processor_name
    from cifar_helpers.engine.record import recorded_sessions
    from cifar_helpers.engine.train import train_model

    if threads:
        torch.set_num_threads(threads)
    record = json.loads(Path(results).read_text())
    saved = checkpoint.load(last)
    if saved.get("fingerprint") != record["fingerprint"]:
        raise SystemExit(f"{shown_path(Path(last))} is of run {saved.get('fingerprint')}, but "
                         f"{shown_path(Path(results))} records run {record['fingerprint']}")
    epoch = saved["epoch"] + 1
    if epoch > len(record["history"]):
        raise SystemExit(f"{shown_path(Path(results))} records {len(record['history'])} epochs: none after the "
                         f"checkpoint's epoch {saved['epoch']} to compare with")
    cfg = TrainConfig.from_params(record["params"])
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "checkpoints" / cfg.model
        folder.mkdir(parents=True)
        shutil.copyfile(last, folder / "last.pt")  # the engine resumes from it; the given file stays as it was
        trained = train_model(cfg, load_cifar10(data_dir, download=False), device="cpu",
                              results_dir=Path(scratch) / "results", checkpoint_dir=folder.parent,
                              stop_after=epoch, log=lambda line: None)
    recorded, here = record["history"][epoch - 1], trained["history"][epoch - 1]
    session = next(s for s in recorded_sessions(record) if s["first_epoch"] <= epoch <= s["last_epoch"])
    same = all(recorded[key] == here[key] for key in COMPARED)
    print(f"{shown_path(Path(results))}, epoch {epoch} from the checkpoint of epoch {saved['epoch']}:\n")
    print("| trained on | processor | " + " | ".join(COMPARED) + " |\n|---|---|" + "---:|" * len(COMPARED))
    for who, processor, row in ((f"the record: {session.get('device_name')}, commit "
                                 f"{(session.get('git_commit') or 'unknown')[:7]}",
                                 session.get("processor") or "not recorded", recorded),
                                (f"here: {device_name(torch.device('cpu'))}", processor_name() or "unknown", here)):
        print(f"| {who} | {processor} | " + " | ".join(f"{row[key]:.6g}" for key in COMPARED) + " |")
    print("\nThe epoch repeats exactly." if same else "\nThe epoch differs: another processor or thread count "
          "rounds otherwise, so a run resumed here goes on from its checkpoint, but not as it went on there.",
          flush=True)
    return same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the run's results file")
    parser.add_argument("checkpoint", type=Path, help="a last.pt of the same run")
    parser.add_argument("--data-dir", required=True, help="CIFAR-10 folder (the JPEG copy here)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (the run's: its device_name)")
    args = parser.parse_args(argv)
    return 0 if repeat(args.results, args.checkpoint, args.data_dir, args.threads) else 1


if __name__ == "__main__":
    raise SystemExit(main())
