"""The training engine: the report's protocols, fast on a GPU, exact on resume.

`train_model(config, data)` trains one model and returns its results record
(`engine.record` builds it), which is also written to `<results_dir>/<model>.json`. Per epoch it records
train/test loss and accuracy, the learning rate, and the training and
evaluation seconds apart. Metrics stay on the device during an epoch and are
read once at its end, so a step makes no host sync.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from cifar_helpers.core.errors import TrainingInterrupted, WorkbookError
from cifar_helpers.core.files import atomic_write_json, exclusive, remove_leftovers
from cifar_helpers.core.hashing import content_digest
from cifar_helpers.core.paths import repo_path, require_writable, shown_path
from cifar_helpers.core.progress import batch_progress, format_course, format_epoch, progress_mode
from cifar_helpers.data.batches import DeviceData
from cifar_helpers.data.cifar10 import subset
from cifar_helpers.engine import checkpoint
from cifar_helpers.engine.config import TrainConfig, check_stop_after, check_subset_fits
from cifar_helpers.engine.device import (SMALL_RUN_IMAGES, configure_determinism, describe_device,
                                         prefers_channels_last, select_device)
from cifar_helpers.engine.fast import make_step, onecycle_scheduler, optimizer_options
from cifar_helpers.engine.record import (RunIdentity, build_record, made_otherwise, prediction_record,
                                         recorded_run, recorded_sessions, results_file, session_facts,
                                         weight_shapes)
from cifar_helpers.engine.your_model import your_network
from cifar_helpers.models import build_model, count_parameters
from cifar_helpers.models.summary import denormal_share, zero_denormals_
from cifar_helpers.models.your_model import ModelDescription


@dataclass
class EarlyStopping:
    """Tracks the best test loss; stops after `patience` epochs without a lower one."""

    patience: int | None
    best_loss: float = math.inf
    best_loss_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False

    def update(self, epoch: int, test_loss: float) -> bool:
        """Record an epoch; return True when its test loss is a new best."""
        improved = test_loss < self.best_loss
        if improved:
            self.best_loss, self.best_loss_epoch, self.bad_epochs = test_loss, epoch, 0
        else:
            self.bad_epochs += 1
        self.stopped = self.patience is not None and self.bad_epochs >= self.patience
        return improved

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__dict__.update({k: v for k, v in state.items() if k in self.__dataclass_fields__})


@dataclass
class TrainingState:
    """Everything that changes from epoch to epoch and must survive a restart."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    early: EarlyStopping
    history: list[dict[str, float]] = field(default_factory=list)
    # Who trained which epochs: a resumed run may have moved machines, thread counts or commits.
    sessions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def epoch(self) -> int:
        return len(self.history)

    def state_dict(self, identity: RunIdentity, cfg: TrainConfig) -> dict[str, Any]:
        return {
            "fingerprint": identity.fingerprint,
            "config": cfg.to_dict(),
            "architecture": identity.architecture,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "early_stopping": self.early.state_dict(),
            "history": self.history,
            "sessions": self.sessions,
            "rng": checkpoint.rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.early.load_state_dict(state["early_stopping"])
        self.history = list(state["history"])
        self.sessions = [dict(session) for session in state.get("sessions", [])]  # none in older checkpoints
        checkpoint.set_rng_state(state["rng"])

    def record_session(self, epoch: int, session: dict[str, Any]) -> None:
        """Count `epoch` as trained by `session`; consecutive epochs of one setup share one entry."""
        last = self.sessions[-1] if self.sessions else None
        if last and last["last_epoch"] == epoch - 1 and all(last.get(k) == v for k, v in session.items()):
            last["last_epoch"] = epoch
        else:
            self.sessions.append({"first_epoch": epoch, "last_epoch": epoch, **session})


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    # Fused kernels update all parameters in a few launches; graph modes also need a device-tensor lr.
    options = optimizer_options(cfg.step_mode, cfg.optimizer, device, cfg.lr)
    if cfg.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), momentum=cfg.momentum, nesterov=cfg.nesterov,
                                    weight_decay=cfg.weight_decay, **options)
    else:  # "adam": L2 weight decay, as the report's Adam(weight_decay=5e-4); "adamw": decoupled (config.OPTIMIZERS)
        adam = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        optimizer = adam(model.parameters(), weight_decay=cfg.weight_decay, **options)
    if cfg.flush_denormals:  # after every step, in every step mode (a CUDA graph captures it too)
        optimizer.register_step_post_hook(_zero_denormals)
    return optimizer


def _zero_denormals(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    """FLUSH_DENORMALS: after a step, every denormal number in the weights and in the optimizer's state (Adam's
    first moment decays with its weight) becomes zero."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    zero_denormals_([*params, *(t for p in params for t in optimizer.state.get(p, {}).values())])


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int = 1):
    """StepLR is stepped per epoch; onecycle (the fast recipe's, engine.fast) per batch (`steps_per_epoch` an epoch)."""
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.scheduler == "onecycle":
        return onecycle_scheduler(optimizer, cfg.epochs * steps_per_epoch, cfg.warmup_fraction)
    return None


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_one_epoch(step, data: DeviceData, cfg: TrainConfig, epoch: int, mode: str,
                    after_step: Callable[[], None] | None = None) -> tuple[float, float, float]:
    """Returns (mean train loss, train accuracy, wall seconds); `after_step` runs after every batch."""
    step.model.train()
    device = data.device
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    batches = data.train_batches(cfg.seed, epoch, cfg.batch_size, cfg.augment)
    n_batches = math.ceil(data.n_train / cfg.batch_size)
    for inputs, labels in batch_progress(batches, n_batches, f"epoch {epoch}", mode):
        step(inputs, labels, loss_sum, correct)
        if after_step is not None:
            after_step()
    _synchronize(device)
    seconds = time.perf_counter() - start
    return loss_sum.item() / data.n_train, correct.item() / data.n_train, seconds


@torch.no_grad()
def evaluate(model, data: DeviceData, cfg: TrainConfig) -> tuple[float, float, float]:
    """Returns (mean test loss, test accuracy, wall seconds), in large batches."""
    model.eval()
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=data.device)
    correct = torch.zeros((), dtype=torch.int64, device=data.device)
    with torch.autocast(data.device.type, dtype=torch.bfloat16, enabled=cfg.amp):
        for inputs, labels in data.test_batches(cfg.eval_batch_size):
            logits = model(inputs)
            loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
            correct += (logits.argmax(1) == labels).sum()
    _synchronize(data.device)
    seconds = time.perf_counter() - start
    return loss_sum.item() / data.n_test, correct.item() / data.n_test, seconds


def _check_best_weights(best_path: Path, best_epoch: int, model: torch.nn.Module, log) -> None:
    """Read the best weights when a run resumes: a truncated best.pt stops it now, not after its last epoch."""
    if not best_path.exists():
        log(f"Warning: {shown_path(best_path)} is missing: the weights of the best epoch so far ({best_epoch}) are "
            "lost. Unless a later epoch reaches a lower test loss, the results will have no restored best weights "
            "and no predictions; retrain from scratch (FORCE=1) to get them back.")
        return
    try:
        weights = checkpoint.load(best_path)
        fits = isinstance(weights, dict) and weight_shapes(weights) == weight_shapes(model.state_dict())
        why = "they do not fit this network"
    except checkpoint.CheckpointError as exc:
        fits, why = False, str(exc.__cause__ or exc)
    if not fits:
        raise checkpoint.CheckpointError(
            f"the best weights {shown_path(best_path)} (of epoch {best_epoch}) cannot be used: {why}. Delete the "
            "file to go on without them (unless a later epoch reaches a lower test loss, the results will have no "
            f"restored best weights and no predictions), or delete {shown_path(best_path.parent)} (or use FORCE=1) "
            "to retrain from scratch.")


class OutOfMemory(WorkbookError, RuntimeError):
    """The GPU ran out of memory; the message says what to lower."""


def _oom_message(cfg: TrainConfig) -> str:
    return (f"CUDA ran out of memory training {cfg.model} with BATCH_SIZE={cfg.batch_size} and "
            f"EVAL_BATCH_SIZE={cfg.eval_batch_size}. Lower EVAL_BATCH_SIZE first (evaluation batches are the "
            "largest): the run then resumes from its last checkpoint. Lowering BATCH_SIZE or setting "
            "AMP=True changes the run itself, so it starts afresh (the old checkpoint is kept aside). "
            "Closing other GPU programs, or DEVICE='cpu', also helps.")


def train_model(
    cfg: TrainConfig,
    data,
    *,
    device: str | torch.device = "auto",
    results_dir: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    progress: str | None = None,
    log: Callable[[str], None] = print,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    stop_after: int | None = None,
    model: torch.nn.Module | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """Train `cfg.model` on `data` (a CIFAR10 from `load_cifar10`) and return its record.

    `model`: a network of your own (any nn.Module with 10 outputs) in place of the report's model that
    `cfg.model` names; `cfg` then comes from `your_model_config`, and `label` (default: the class name)
    names it in tables and figures. A copy of it trains, so running the same call again starts from the
    same weights. Its checkpoint resumes only while `str(model)` stays the same.

    Resumes from `checkpoint_dir/<model>/last.pt` when it was made with the
    same parameters; one made with other parameters is moved aside, never
    mixed in. `on_epoch_end(epoch, row)` runs after each epoch's checkpoint.

    The results file is rewritten after every epoch with `"complete": false`
    until the run ends, so an interrupted run still shows how far it got.
    `stop_after=N` ends this session after epoch N of the `cfg.epochs` planned
    (a partial run, resumable later); it changes no number, so it is not a
    training parameter.
    """
    check_stop_after(stop_after)
    network = your_network(cfg, model, label)  # None for a report model
    check_subset_fits(cfg.subset, len(data.train_labels), len(data.test_labels))
    device = device if isinstance(device, torch.device) else select_device(device)
    results_dir = repo_path(results_dir, "results")
    ckpt_dir = repo_path(checkpoint_dir, "checkpoints") / cfg.model
    # Before any epoch: a folder that cannot take the results would lose the whole run at its end.
    require_writable(results_dir, "RESULTS_DIR")
    require_writable(ckpt_dir, "CHECKPOINT_DIR")
    # One writer per checkpoint folder, and per results file: two runs with one RESULTS_DIR and
    # different CHECKPOINT_DIRs would otherwise replace each other's results.
    with checkpoint.exclusive_folder(ckpt_dir, cfg.model), \
            exclusive(results_dir, f"the results of {cfg.model}", "set another RESULTS_DIR",
                      name=f".{cfg.model}.lock"):
        remove_leftovers(ckpt_dir)
        remove_leftovers(results_dir, results_file(results_dir, cfg.model).name)
        own = None if network is None else (copy.deepcopy(model), network)
        return _train(cfg, data, device, results_dir, ckpt_dir, progress or progress_mode(), log,
                      on_epoch_end, stop_after, own)


def _train(cfg: TrainConfig, data, device: torch.device, results_dir: Path, ckpt_dir: Path, mode: str,
           log: Callable[[str], None], on_epoch_end, stop_after: int | None,
           own: tuple[torch.nn.Module, ModelDescription] | None) -> dict[str, Any]:
    configure_determinism(cfg.deterministic)
    # The data's content, not its path: a results file or checkpoint made from other images never
    # counts. The digest is of the whole data set; cfg.subset says which part of it trains.
    data_digest = data.digest or _tensor_digest(data)
    identity = RunIdentity.of(cfg, device.type, data_digest, len(data.train_labels), len(data.test_labels),
                              network=own[1] if own else None)
    fingerprint = identity.fingerprint
    if cfg.subset is not None:
        data = subset(data, *cfg.subset, seed=cfg.seed)
    mean, std = data.normalization  # of the training images actually used
    last_path, best_path = ckpt_dir / checkpoint.LAST, ckpt_dir / checkpoint.BEST
    last_epoch = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    results_path = results_file(results_dir, cfg.model)
    # Before any model or data is built: a finished run without its checkpoint is only shown.
    recorded = None if last_path.exists() else recorded_run(results_path, identity)
    if recorded is not None:
        done = len(recorded["history"])
        if recorded["complete"] is True or done == last_epoch:
            log(f"{shown_path(results_path)} holds this run (run {fingerprint}, same parameters, data and network) "
                f"up to epoch {done}, and there is no checkpoint to go on from: showing it, not training it "
                "again (FORCE=1, or deleting that file, trains afresh). The epochs:")
            for line in format_course(recorded["history"], recorded_sessions(recorded), cfg.epochs):
                log(line)
            return recorded
        kept = results_path.with_name(f".{results_path.name}.before-restart")
        results_path.replace(kept)
        log(f"{shown_path(results_path)} holds this run up to epoch {done}, but its checkpoint is gone: training "
            f"afresh from epoch 1 (the record is kept as {shown_path(kept)}).")

    torch.manual_seed(cfg.seed)
    model = (own[0] if own else build_model(cfg.model, **cfg.model_options)).to(device)
    channels_last = prefers_channels_last(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model, device)
    steps_per_epoch = math.ceil(len(data.train_labels) / cfg.batch_size)
    scheduler = make_scheduler(cfg, optimizer, steps_per_epoch)
    per_batch = scheduler.step if cfg.scheduler == "onecycle" else None
    state = TrainingState(model, optimizer, scheduler, EarlyStopping(cfg.patience))
    device_data = DeviceData(data.train_images, data.train_labels, data.test_images, data.test_labels,
                             mean, std, device, channels_last=channels_last)
    step = make_step(cfg.step_mode, model, optimizer, cfg.amp, device)

    log(f"{identity.shown}: {count_parameters(model):,} parameters; {device_data.n_train:,} train / "
        f"{device_data.n_test:,} test images; run {fingerprint}")
    session = session_facts(device)
    if last_path.exists():
        saved = checkpoint.load(last_path)
        other = made_otherwise(saved, identity, cfg.to_dict(), model.state_dict())
        if other is None:
            state.load_state_dict(saved)
            if state.epoch and not state.sessions:  # a checkpoint from before sessions were recorded
                state.sessions = [{"first_epoch": 1, "last_epoch": state.epoch, **session}]
            log(f"Resuming from {shown_path(last_path)} after epoch {state.epoch}; the epochs so far:")
            for line in format_course(state.history, state.sessions, cfg.epochs):
                log(line)
            if state.early.best_loss_epoch:
                _check_best_weights(best_path, state.early.best_loss_epoch, model, log)
        else:
            old_run = str(saved.get("fingerprint", "unknown"))
            if own:  # one run may see several versions of a model of your own: each is kept under its own name
                old_run += f"-{(saved.get('architecture') or {}).get('text_hash', 'unknown')}"
            moved = [checkpoint.archive_stale(p, old_run) for p in (last_path, best_path) if p.exists()]
            log(f"The checkpoint in {shown_path(ckpt_dir)} was made {other}; "
                f"kept it as {', '.join(p.name for p in moved)} and starting fresh.")
    _keep_another_record(results_path, identity, state.history, log)

    to_train = 0 if state.early.stopped else max(0, last_epoch - state.epoch)
    if to_train:  # a finished run, or one stopped at STOP_AFTER, only shows its course
        log(describe_device(device, long_run=to_train * device_data.n_train > SMALL_RUN_IMAGES))
    started = time.perf_counter()

    def write_record(restored=None, predictions=None) -> dict[str, Any]:
        record = build_record(cfg, identity, num_parameters=count_parameters(model), device_type=device.type,
                              data_source=data.source, data_digest=data_digest, history=state.history,
                              # the setups that trained the epochs, not the one that reads a finished checkpoint
                              sessions=state.sessions, complete=_finished(state, cfg),
                              stopped_early=state.early.stopped, restored=restored, predictions=predictions,
                              seconds=time.perf_counter() - started)
        atomic_write_json(results_path, record)
        return record

    denormals_noted = False
    try:
        for epoch in range(state.epoch + 1, last_epoch + 1):
            if state.early.stopped:
                break
            lr = float(optimizer.param_groups[0]["lr"])  # a device tensor in graph modes
            train_loss, train_acc, train_seconds = train_one_epoch(step, device_data, cfg, epoch, mode, per_batch)
            test_loss, test_acc, eval_seconds = evaluate(model, device_data, cfg)
            if state.scheduler is not None and per_batch is None:
                state.scheduler.step()
            row = dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, test_loss=test_loss,
                       test_acc=test_acc, lr=lr, train_seconds=train_seconds, eval_seconds=eval_seconds)
            state.history.append(row)
            state.record_session(epoch, session)
            if state.early.update(epoch, test_loss):
                checkpoint.save(model.state_dict(), best_path)
            checkpoint.save(state.state_dict(identity, cfg), last_path)
            log(format_epoch(row, cfg.epochs))
            if device.type == "cpu" and not denormals_noted:
                denormals_noted = _note_denormals(model, log)
            if not _finished(state, cfg):
                write_record()  # progress so far; the last epoch's record comes below
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)
    except torch.cuda.OutOfMemoryError:
        raise OutOfMemory(_oom_message(cfg)) from None
    except KeyboardInterrupt:
        saved = (f"epochs 1-{state.epoch} are saved in {shown_path(last_path)}" if state.epoch
                 else "no epoch had finished")
        raise TrainingInterrupted(
            f"Training stopped during epoch {state.epoch + 1} of {cfg.epochs}; {saved}. Run this cell again "
            "(or the same command) to resume from there.") from None

    if state.early.stopped:
        log(f"Early stopping after epoch {state.epoch}: no lower test loss for {cfg.patience} epochs.")
    finished = _finished(state, cfg)
    if not finished:
        log(f"Stopped after epoch {state.epoch} of {cfg.epochs} (STOP_AFTER={stop_after}): the results are "
            f"partial. Run again with a higher STOP_AFTER, or None, to resume from {shown_path(last_path)}.")
    restored = predictions = None
    best_epoch = state.early.best_loss_epoch
    if best_epoch and best_path.exists():
        model.load_state_dict(checkpoint.load(best_path))
        loss, acc, _ = evaluate(model, device_data, cfg)
        restored = {"epoch": best_epoch, "test_loss": loss, "test_acc": acc}
        predicted, confidence = predict(model, device_data, cfg)
        predictions = prediction_record(data.test_labels.numpy(), predicted, confidence, best_epoch)
        log(f"{'Restored the best weights' if finished else 'The best weights so far'} (epoch {best_epoch}): "
            f"test loss {loss:.4f}, accuracy {100 * acc:.2f}%.")
    elif best_epoch:
        log(f"Warning: {shown_path(best_path)} is missing, so the weights of the best epoch ({best_epoch}) can be "
            "neither restored nor evaluated: the results file has no restored_best and no predictions (the history is "
            "complete). Retrain from scratch (FORCE=1) to get them back.")
    record = write_record(restored, predictions)
    log(f"Results written to {shown_path(results_path)}")
    return record


# A CPU run says once in a session when this share of its weights has decayed into denormal numbers.
DENORMAL_NOTE_SHARE = 0.1


@torch.no_grad()
def _note_denormals(model: torch.nn.Module, log: Callable[[str], None]) -> bool:
    """Why a CPU run's epochs may start taking several times longer; True once said."""
    share = denormal_share(model.parameters())
    if share < DENORMAL_NOTE_SHARE:
        return False
    log(f"Note: {100 * share:.0f}% of the weights have decayed into denormal numbers (below 1.2e-38), which many "
        "CPUs compute several times slower: later epochs may take longer (docs/custom-resnet.md, 'Where the "
        "capacity went'). A new run with FLUSH_DENORMALS=True zeroes them after every step and avoids that.")
    return True


@torch.no_grad()
def predict(model, data: DeviceData, cfg: TrainConfig):
    """The predicted class and its softmax probability for every test image (numpy arrays, test order)."""
    model.eval()
    classes, confidences = [], []
    with torch.autocast(data.device.type, dtype=torch.bfloat16, enabled=cfg.amp):
        for inputs, _ in data.test_batches(cfg.eval_batch_size):
            probabilities = model(inputs).float().softmax(1)
            confidence, predicted = probabilities.max(1)
            classes.append(predicted)
            confidences.append(confidence)
    return torch.cat(classes).cpu().numpy(), torch.cat(confidences).cpu().numpy()


def _tensor_digest(data) -> str:
    """The content digest of a CIFAR10 built by hand (load_cifar10 and subset set `digest` themselves)."""
    return content_digest([t.numpy() for t in (data.train_images, data.train_labels,
                                               data.test_images, data.test_labels)])


def _keep_another_record(results_path: Path, identity: RunIdentity, history: list[dict], log) -> None:
    """Move aside, before this run writes its record, a results file that is not this run's course so far:
    another run's (other parameters, data or network), or a longer course of this one (an older checkpoint
    copied in). Nothing is overwritten."""
    if not results_path.exists():
        return
    recorded = recorded_run(results_path, identity)
    if recorded is None:
        try:
            other = str(json.loads(results_path.read_text(encoding="utf-8")).get("fingerprint", "unknown"))
        except (OSError, ValueError, AttributeError):
            other = "unreadable"
        other = "".join(c for c in other if c.isalnum())[:32] or "unknown"  # a file name, whatever the file said
        kept = results_path.with_name(f".{results_path.name}.stale-{other}")
        results_path.replace(kept)
        log(f"{shown_path(results_path)} held another run's record (run {other}: other parameters, data or "
            f"network): kept it as {shown_path(kept)}.")
        return
    epochs = recorded["history"]
    if len(epochs) <= len(history) and all(a["test_loss"] == b["test_loss"] for a, b in zip(epochs, history)):
        return  # the checkpoint's own course so far (the record is written just after the checkpoint)
    kept = results_path.with_name(f".{results_path.name}.before-resume")
    results_path.replace(kept)
    log(f"{shown_path(results_path)} holds another course of this run ({len(epochs)} epochs) than the checkpoint's "
        f"{len(history)}: going on from the checkpoint, the record kept as {shown_path(kept)}.")


def _finished(state: TrainingState, cfg: TrainConfig) -> bool:
    return state.early.stopped or state.epoch >= cfg.epochs
