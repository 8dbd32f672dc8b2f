"""Seconds per training epoch: the plain PyTorch loop against the workbook's engine.

    python benchmarks/epoch_speed.py [--device auto] [--models dnn,cnn,resnet,custom_resnet]
        [--modes auto] [--epochs 2] [--warmup N] [--subset N] [--markdown benchmarks/RESULTS.md]

In one process, on the same data and with each model's report protocol
(batch 64; SGD or Adam; crop + flip for the Custom ResNet):

- plain: the way a tutorial trains. A Dataset turns each uint8 image into a
  PIL image and runs torchvision transforms on it; a DataLoader with 4
  workers (pinned memory on CUDA) batches them; eager fp32 forward,
  backward and optimizer step, with `loss.item()` and the correct count
  read back every step.
- engine:<mode>: `cifar_helpers` as the notebooks train. The data stay on
  the device, each epoch is shuffled and augmented by a few whole-tensor
  ops, and the step is `make_step(mode)` (`--modes eager,cuda_graph,...`;
  a `+bf16` suffix trains under bf16 autocast).

Each model is timed for `--epochs` epochs after a warm-up (CUDA events on
a GPU, wall clock on the CPU) and the median is reported, with images per
second, the evaluation seconds per epoch, and the speed-up over plain.
On the CPU the run uses a subset (2,048 training images unless `--subset`
says otherwise), and the output says so: those numbers measure per-step
overhead on that machine, not GPU speed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cifar_helpers.core.files import atomic_write_json, atomic_write_text  # noqa: E402
from cifar_helpers.data.batches import DeviceData  # noqa: E402
from cifar_helpers.engine.config import TrainConfig  # noqa: E402
from cifar_helpers.data.cifar10 import channel_stats, load_cifar10, subset  # noqa: E402
from cifar_helpers.data.errors import CIFAR10Warning  # noqa: E402
from cifar_helpers.engine.device import configure_determinism, device_name, prefers_channels_last, select_device  # noqa: E402
from cifar_helpers.models import MODEL_NAMES, build_model  # noqa: E402
from cifar_helpers.engine.record import code_revision, describe  # noqa: E402
from cifar_helpers.report.results import format_duration  # noqa: E402
from cifar_helpers.engine.fast import GRAPH_MODES, GRAPH_WARMUP_STEPS, STEP_MODES, make_step, resolve_mode  # noqa: E402
from cifar_helpers.engine.train import evaluate, make_optimizer, train_one_epoch  # noqa: E402

CPU_DEFAULT_SUBSET = 2048
PLAIN_WORKERS = 4
REPORT_EPOCHS = {"dnn": 100, "cnn": 100, "resnet": 100, "custom_resnet": 77}  # 05: best epoch 62 + patience 15
FULL_TRAIN, FULL_TEST = 50_000, 10_000


# ----------------------------------------------------------------------------- the plain loop

class PlainCIFAR(torch.utils.data.Dataset):
    """uint8 NHWC images -> PIL image -> torchvision transforms, one sample at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images.numpy(), labels.numpy(), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def plain_transform(mean, std, augment: bool):
    from torchvision import transforms

    steps = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if augment else []
    return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(mean, std)])


def plain_loader(images, labels, transform, batch_size: int, device: torch.device, shuffle: bool, workers: int):
    return torch.utils.data.DataLoader(PlainCIFAR(images, labels, transform), batch_size=batch_size,
                                       shuffle=shuffle, num_workers=workers, pin_memory=device.type == "cuda")


def plain_optimizer(cfg: TrainConfig, model):
    """The protocol's optimizer with torch's default implementation."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def plain_train_epoch(model, loader, optimizer, device, max_steps: int | None = None) -> tuple[float, float]:
    model.train()
    running_loss, correct, seen = 0.0, 0, 0
    for index, (inputs, labels) in enumerate(loader):
        if max_steps is not None and index >= max_steps:
            break
        inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        outputs = model(inputs)
        loss = F.cross_entropy(outputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running_loss += loss.item() * labels.size(0)
        correct += (outputs.argmax(1) == labels).sum().item()
        seen += labels.size(0)
    return running_loss / max(seen, 1), correct / max(seen, 1)


@torch.no_grad()
def plain_evaluate(model, loader, device) -> tuple[float, float]:
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for inputs, labels in loader:
        inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        outputs = model(inputs)
        total_loss += F.cross_entropy(outputs, labels, reduction="sum").item()
        correct += (outputs.argmax(1) == labels).sum().item()
        seen += labels.size(0)
    return total_loss / seen, correct / seen


# ----------------------------------------------------------------------------- timing

class Timer:
    """Seconds of device work between start() and stop(): CUDA events on a GPU, else the wall clock."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __enter__(self):
        if self.cuda:
            self.begin, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.begin.record()
        else:
            self.begin = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            self.seconds = self.begin.elapsed_time(self.end) / 1000
        else:
            self.seconds = time.perf_counter() - self.begin


@dataclass
class Row:
    model: str
    loop: str
    batch_size: int
    n_train: int
    n_test: int
    epoch_seconds: list[float]
    eval_seconds: float
    train_acc: float
    setup_seconds: float = 0.0  # warm-up epochs (captures, compiles) before the timed ones

    @property
    def seconds(self) -> float:
        return statistics.median(self.epoch_seconds)

    @property
    def images_per_second(self) -> float:
        return self.n_train / self.seconds

    def to_dict(self) -> dict:
        return {**asdict(self), "seconds": self.seconds, "images_per_second": self.images_per_second}


def time_plain(name: str, data, device, batch_size: int, epochs: int, warmup_steps: int, workers: int) -> Row:
    cfg = TrainConfig.for_model(name, batch_size=batch_size)
    configure_determinism(False)
    torch.backends.cudnn.benchmark = False  # the plain way: torch's defaults
    torch.manual_seed(cfg.seed)
    model = build_model(name, **cfg.model_options).to(device)
    optimizer = plain_optimizer(cfg, model)
    mean, std = channel_stats(data.train_images)
    train = plain_loader(data.train_images, data.train_labels, plain_transform(mean, std, cfg.augment),
                         batch_size, device, True, workers)
    test = plain_loader(data.test_images, data.test_labels, plain_transform(mean, std, False),
                        batch_size, device, False, workers)
    started = time.perf_counter()
    plain_train_epoch(model, train, optimizer, device, max_steps=warmup_steps)
    setup = time.perf_counter() - started
    seconds, acc = [], 0.0
    for _ in range(epochs):
        with Timer(device) as timer:
            _, acc = plain_train_epoch(model, train, optimizer, device)
        seconds.append(timer.seconds)
    with Timer(device) as eval_timer:
        plain_evaluate(model, test, device)
    return Row(name, "plain", batch_size, len(data.train_labels), len(data.test_labels), seconds,
               eval_timer.seconds, acc, setup)


def parse_mode(spec: str) -> tuple[str, bool]:
    """'cuda_graph+bf16' -> ('cuda_graph', True)."""
    mode, _, suffix = spec.partition("+")
    if mode not in STEP_MODES or suffix not in ("", "bf16"):
        raise ValueError(f"engine mode {spec!r}: use one of {STEP_MODES}, optionally with '+bf16'")
    return mode, suffix == "bf16"


def engine_warmup_epochs(mode: str) -> int:
    """Epochs until every batch size runs at steady state: graphs capture the partial batch late."""
    return 1 + GRAPH_WARMUP_STEPS if mode in GRAPH_MODES else 1


def time_engine(name: str, data, device, spec: str, batch_size: int, epochs: int, warmup: int | None) -> Row:
    mode, amp = parse_mode(spec)
    mode = resolve_mode(mode, device)
    cfg = TrainConfig.for_model(name, batch_size=batch_size, step_mode=mode, amp=amp)
    configure_determinism(cfg.deterministic)
    torch.manual_seed(cfg.seed)
    channels_last = prefers_channels_last(device)  # as the engine does
    model = build_model(name, **cfg.model_options).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model, device)
    mean, std = channel_stats(data.train_images)
    device_data = DeviceData(data.train_images, data.train_labels, data.test_images, data.test_labels,
                             mean, std, device, channels_last=channels_last)
    step = make_step(mode, model, optimizer, amp, device)
    started = time.perf_counter()
    warmup = engine_warmup_epochs(mode) if warmup is None else warmup
    for epoch in range(1, warmup + 1):
        train_one_epoch(step, device_data, cfg, epoch, "lines")
    setup = time.perf_counter() - started
    seconds, acc = [], 0.0
    for epoch in range(warmup + 1, warmup + epochs + 1):
        with Timer(device) as timer:
            _, acc, _ = train_one_epoch(step, device_data, cfg, epoch, "lines")
        seconds.append(timer.seconds)
    with Timer(device) as eval_timer:
        evaluate(model, device_data, cfg)
    label = f"engine:{mode}" + ("+bf16" if amp else "")
    return Row(name, label, batch_size, device_data.n_train, device_data.n_test, seconds,
               eval_timer.seconds, acc, setup)


# ----------------------------------------------------------------------------- reporting

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_run(device: torch.device, data, args, n_train: int, n_test: int) -> list[str]:
    lines = [
        f"device: {device_name(device)}; torch {torch.__version__}; python {platform.python_version()}; "
        f"host CPU {cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads",
        f"date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}; commit: {describe(code_revision())}",
        f"data: {data.source}; batch {args.batch_size}",
        f"timed: median of {args.epochs} epoch(s) after warm-up (engine: {args.warmup if args.warmup is not None else 'auto'} "
        f"epoch(s), plain: {args.plain_warmup_steps} steps); "
        + ("CUDA events" if device.type == "cuda" else "wall clock"),
    ]
    if n_train < FULL_TRAIN:
        where = "on the CPU" if device.type == "cpu" else f"on {device.type}"
        lines.append(f"SUBSET {where}: {n_train:,} of the training images, so each 'epoch' is a subset epoch. "
                     "These numbers show per-step overhead on this machine, not GPU speed.")
    return lines


def format_table(rows: list[Row]) -> str:
    plain = {r.model: r.seconds for r in rows if r.loop == "plain"}
    lines = ["| model | loop | s/epoch | images/s | eval s | setup s | train acc | speed-up vs plain |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = f"{plain[r.model] / r.seconds:.2f}x" if r.model in plain else "-"
        lines.append(f"| {r.model} | {r.loop} | {r.seconds:.3f} | {r.images_per_second:,.0f} | {r.eval_seconds:.3f} | "
                     f"{r.setup_seconds:.1f} | {100 * r.train_acc:.1f}% | {ratio} |")
    return "\n".join(lines)


def suite_estimate(rows: list[Row]) -> list[str]:
    """The report suite (01, 02, 03, 05 through early stopping) extrapolated from per-epoch times."""
    lines = []
    loops = sorted({r.loop for r in rows})
    for loop in loops:
        chosen = {r.model: r for r in rows if r.loop == loop}
        if set(chosen) != set(REPORT_EPOCHS):
            continue
        total = 0.0
        for model, epochs in REPORT_EPOCHS.items():
            r = chosen[model]
            per_epoch = r.seconds * FULL_TRAIN / r.n_train + r.eval_seconds * FULL_TEST / r.n_test
            total += epochs * per_epoch
        scaled = " (scaled from the subset to 50,000/10,000 images)" if any(r.n_train < FULL_TRAIN for r in chosen.values()) else ""
        lines.append(f"report suite, {loop}: ~{format_duration(total)} of training + evaluation{scaled}")
    if lines:
        lines.insert(0, "Report suite estimate: " + ", ".join(f"{m} {e} epochs" for m, e in REPORT_EPOCHS.items())
                     + " (05: the report's best epoch 62 + patience 15), from the per-epoch times above:")
    return lines


def markdown_section(title: str, header: list[str], table: str, suite: list[str], command: str) -> str:
    parts = [f"## {title}", "", *[f"- {line}" for line in header], f"- command: `{command}`", "", table, ""]
    if suite:
        parts += [*[f"- {line}" for line in suite], ""]
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- main

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--models", default=",".join(MODEL_NAMES))
    parser.add_argument("--modes", default="auto",
                        help=f"engine step modes, comma-separated, each one of {STEP_MODES} with an optional "
                             "'+bf16' (auto: cuda_graph on a GPU, eager on the CPU)")
    parser.add_argument("--no-plain", action="store_true", help="time the engine only")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per model and loop")
    parser.add_argument("--warmup", type=int, default=None,
                        help="engine warm-up epochs (default: 1, or 1 + graph warm-up steps for graph modes)")
    parser.add_argument("--plain-warmup-steps", type=int, default=20, help="plain loop warm-up batches")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--subset", type=int, default=None,
                        help=f"training images to time (test images: a fifth); default: all on a GPU, "
                             f"{CPU_DEFAULT_SUBSET} on the CPU")
    parser.add_argument("--workers", type=int, default=PLAIN_WORKERS, help="plain loop DataLoader workers")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder (default: $CIFAR10_DIR, else data/)")
    parser.add_argument("--markdown", default=None, help="append the table to this Markdown file")
    parser.add_argument("--title", default=None, help="section title for --markdown")
    parser.add_argument("--json", default=None, help="write every row to this JSON file")
    parser.add_argument("--suite", action="store_true", help="extrapolate the report suite's time")
    args = parser.parse_args(argv)
    args.model_list = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(args.model_list) - set(MODEL_NAMES))
    if unknown or not args.model_list:
        parser.error(f"--models: unknown {unknown}; choose from {', '.join(MODEL_NAMES)}")
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    for spec in args.mode_list:
        try:
            parse_mode(spec)
        except ValueError as exc:
            parser.error(str(exc))
    if args.epochs < 1:
        parser.error("--epochs must be >= 1")
    return args


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    # The plain way uses 4 workers whatever the core count; torch's advice about that is expected here.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    device = select_device(args.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CIFAR10Warning)  # the JPEG copy's one-line caveat
        data = load_cifar10(args.data_dir, download=False)
    n_train = args.subset if args.subset is not None else (CPU_DEFAULT_SUBSET if device.type == "cpu" else None)
    if n_train is not None and n_train < len(data.train_labels):
        n_test = min(len(data.test_labels), max(10, n_train // 5))
        data = subset(data, n_train, n_test)
    header = describe_run(device, data, args, len(data.train_labels), len(data.test_labels))
    print("\n".join(header), flush=True)

    rows: list[Row] = []
    for name in args.model_list:
        if not args.no_plain:
            rows.append(time_plain(name, data, device, args.batch_size, args.epochs, args.plain_warmup_steps,
                                   args.workers))
            print(f"  {name} plain: {rows[-1].seconds:.3f} s/epoch", flush=True)
        for spec in args.mode_list:
            rows.append(time_engine(name, data, device, spec, args.batch_size, args.epochs, args.warmup))
            print(f"  {name} {rows[-1].loop}: {rows[-1].seconds:.3f} s/epoch", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()

    table = format_table(rows)
    suite = suite_estimate(rows) if args.suite else []
    print()
    print(table)
    for line in suite:
        print(line)
    command = "python benchmarks/epoch_speed.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.json:
        atomic_write_json(Path(args.json), {"header": header, "rows": [r.to_dict() for r in rows], "suite": suite,
                                            "command": command})
    if args.markdown:
        where = "CPU, subset" if device.type == "cpu" else device_name(device)
        title = args.title or f"{where}, {dt.date.today().isoformat()}"
        path = Path(args.markdown)
        existing = path.read_text() if path.exists() else "# Benchmark results\n\n"
        atomic_write_text(path, existing.rstrip("\n") + "\n\n" + markdown_section(title, header, table, suite, command))
        print(f"Appended to {path}")
    return rows


if __name__ == "__main__":
    main()
    sys.exit(0)
