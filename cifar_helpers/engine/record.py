"""The run record: the results file `<results_dir>/<model>.json`, which this module owns.

The engine builds it (`build_record`) and writes it after every epoch; the report reads it, and takes
only what `validate_result` passes. A run is named by its `RunIdentity` (fingerprint and network), and
every question about what is already on disk is answered here, by that identity:

- is a results file this very run (`recorded_run`), and did it run to its end (`finished_run`)?
- was a checkpoint made by this run, and if not, how otherwise (`made_otherwise`)?
- are two results files seeds of one run (`unlike_run`)?

The record also says which code and machine trained each epoch (`code_revision`, `session_facts`), and
holds the test-set predictions of the best weights (`prediction_record`), which the report reads back.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torchvision

from cifar_helpers.core import paths
from cifar_helpers.engine.config import TrainConfig
from cifar_helpers.engine.device import cuda_fp32_math, device_name, processor_name
from cifar_helpers.models.specs import SPECS
from cifar_helpers.models.your_model import ModelDescription

SCHEMA_VERSION = 1
HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "train_seconds")
SESSION_KEYS = ("first_epoch", "last_epoch", "device_name", "git_commit", "uncommitted_code")  # as records keep them
# Kept when a session recorded it: sessions from before it was recorded keep the keys above only.
LATER_SESSION_KEYS = ("processor",)


# ----------------------------------------------------------------------------- which run


@dataclass(frozen=True)
class RunIdentity:
    """What makes a run this run: its fingerprint (every parameter that changes a number, the device type
    and the data's content and size) and its network (the factory's every option: a default that changed
    since leaves the fingerprint equal; for a model of your own, `network`'s architecture: its class,
    parameter count and the hash of its text)."""

    model: str
    fingerprint: str
    architecture: dict[str, Any]
    network: ModelDescription | None = None  # a model of your own (models.your_model), None for the report's

    @classmethod
    def of(cls, cfg: TrainConfig, device_type: str, data_digest: str, n_train: int, n_test: int,
           network: ModelDescription | None = None) -> "RunIdentity":
        """The run `cfg` makes on a `device_type` device from data of `data_digest` holding `n_train` / `n_test`
        images (the whole set: SUBSET, which the digest does not see, picks the part that trains), of the
        report's model `cfg.model` or of your own `network`."""
        n_train, n_test = cfg.subset or (n_train, n_test)
        context = {"device": device_type, "data_digest": data_digest, "n_train": n_train, "n_test": n_test}
        architecture = network.architecture if network else cfg.architecture()
        return cls(cfg.model, cfg.fingerprint(**context), architecture, network)

    @property
    def shown(self) -> str:
        """How the engine's lines name the model: the report's by name, yours by its label."""
        return self.network.label if self.network else self.model


def results_file(results_dir: Path, model: str) -> Path:
    """The record of a run of `model` in `results_dir`."""
    return results_dir / f"{model}.json"


def recorded_run(results_path: Path, identity: RunIdentity) -> dict | None:
    """The results file of this very run (a valid record of the same fingerprint and network), else None.

    A finished run whose checkpoints are gone (a fresh clone of committed reference runs, a cleaned folder)
    is then shown from its record instead of being trained again from scratch."""
    try:
        record = json.loads(results_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (validate_result(record, identity.model) is not None or record.get("fingerprint") != identity.fingerprint
            or record.get("architecture") != identity.architecture):
        return None
    return record


def finished_run(results_path: Path, identity: RunIdentity) -> dict | None:
    """The record of this very run when it ran to its end (all its epochs, or early stopping), else None."""
    record = recorded_run(results_path, identity)
    return record if record is not None and record["complete"] is True else None


def made_otherwise(saved: Mapping[str, Any], identity: RunIdentity, config: Mapping[str, Any],
                   weights: Mapping[str, Any]) -> str | None:
    """How a checkpoint differs from this run ("with other parameters (...)"), or None when it resumes it.

    `config` is this run's (TrainConfig.to_dict) and `weights` its network's state dict. The fingerprint
    covers the parameters, not the code: a factory default that changed since (the ResNet's widths, say)
    leaves it equal. So the network must match too: the architecture the checkpoint records or, in one from
    before that was recorded, its weights' names and shapes."""
    if saved.get("fingerprint") != identity.fingerprint:
        return f"with other parameters ({_difference(saved.get('config', {}), config)})"
    if "architecture" in saved:
        if saved["architecture"] != identity.architecture:
            why = "its definition changed since" if identity.network else "a default changed since"
            return (f"for another {identity.shown} network "
                    f"({_difference(saved['architecture'], identity.architecture)}: {why})")
        return None
    if weight_shapes(saved["model"]) != weight_shapes(weights):
        return f"for another {identity.model} network (its weights do not fit this one: a default changed since)"
    return None


def weight_shapes(state_dict: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(tensor.shape) for name, tensor in state_dict.items()}


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """'epochs: 2 -> 3; lr: 0.1 -> 0.05': the keys whose values differ, or '' when none does."""
    keys = sorted(set(old) | set(new))
    return "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def _difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    return changes(old, new) or "same parameters, other device or data"


# What may differ between the seeds of one mean: the seed, and EVAL_BATCH_SIZE, which only splits the
# evaluation (TrainConfig.fingerprint leaves it out too).
_NOT_THE_RUN = ("seed", "eval_batch_size")


def unlike_run(run: Mapping[str, Any], main: Mapping[str, Any]) -> str | None:
    """How `run` differs from `main` in anything but its seed ("trained on other data"), or None when
    they are two seeds of one run: the same parameters, data (content digest) and network."""
    def params(result):
        return {k: v for k, v in (result.get("params") or {}).items() if k not in _NOT_THE_RUN}

    if params(run) != params(main):
        return f"trained with other parameters ({changes(params(main), params(run))})"
    if run.get("data_digest") != main.get("data_digest"):
        return f"trained on other data (data digest {run.get('data_digest')}, not {main.get('data_digest')})"
    if run.get("architecture") != main.get("architecture"):
        return f"trained another network ({changes(main.get('architecture') or {}, run.get('architecture') or {})})"
    return None


# ----------------------------------------------------------------------------- what can be used


def rerun_hint(model: str) -> str:
    """What makes `model`'s results file again: 'rerun notebooks/01_dnn.ipynb', or for a model of one's own
    'train 'wide_cnn' again'."""
    return f"rerun {SPECS[model].notebook_path}" if model in SPECS else f"train {model!r} again"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_result(result: Any, model: str) -> str | None:
    """Why `result` (the content of `<model>.json`) cannot be used, or None when it can."""
    if not isinstance(result, dict):
        return f"expected a JSON object, got {type(result).__name__}"
    schema = result.get("schema")
    if schema != SCHEMA_VERSION:
        return f"schema is {schema!r}, this reader understands schema {SCHEMA_VERSION}; update cifar_helpers or {rerun_hint(model)}"
    if result.get("model") != model:
        return f"file is named for {model!r} but its 'model' field is {result.get('model')!r}"
    complete = result.get("complete")
    if complete is not True and not (complete is False and is_number(result.get("epochs_planned"))):
        return (f"incomplete: training has not finished ('complete' is {complete!r}, no epochs_planned); "
                f"finish it or {rerun_hint(model)}")
    history = result.get("history")
    if not isinstance(history, list) or not history:
        return "'history' is missing or empty"
    for index, row in enumerate(history):
        if not isinstance(row, dict):
            return f"history[{index}] is not an object"
        absent = [key for key in HISTORY_KEYS if not is_number(row.get(key))]
        if absent:
            return f"history[{index}] lacks numeric {', '.join(absent)}"
        if row["epoch"] != index + 1:
            return f"history[{index}] has epoch {row['epoch']!r}, expected {index + 1} (epochs are 1-based and consecutive)"
    stop_epoch = result.get("stop_epoch")
    if stop_epoch is not None and stop_epoch != len(history):
        return f"stop_epoch is {stop_epoch!r} but the history has {len(history)} epochs"
    if not any(math.isfinite(row["test_loss"]) for row in history):
        return "no epoch has a finite test loss"
    if not any(math.isfinite(row["test_acc"]) for row in history):
        return "no epoch has a finite test accuracy"
    for index, row in enumerate(history):
        for key in ("train_acc", "test_acc"):
            if math.isfinite(row[key]) and not 0 <= row[key] <= 1:
                return (f"history[{index}] has {key} {row[key]!r}: accuracies are fractions in [0, 1], "
                        f"not percent; {rerun_hint(model)}")
    return None


@dataclass(frozen=True)
class BestPoints:
    """The epochs of lowest test loss and highest test accuracy (1-based)."""

    loss_epoch: int
    test_loss: float
    acc_at_loss_epoch: float
    acc_epoch: int
    test_acc: float
    loss_at_acc_epoch: float


def best_points(result: Mapping[str, Any]) -> BestPoints:
    """Lowest test loss and highest test accuracy; non-finite epochs are ignored, ties go to the earliest epoch."""
    history = result["history"]
    loss_row = min((row for row in history if math.isfinite(row["test_loss"])), key=lambda row: row["test_loss"])
    acc_row = max((row for row in history if math.isfinite(row["test_acc"])), key=lambda row: row["test_acc"])
    return BestPoints(
        loss_epoch=int(loss_row["epoch"]),
        test_loss=float(loss_row["test_loss"]),
        acc_at_loss_epoch=float(loss_row["test_acc"]),
        acc_epoch=int(acc_row["epoch"]),
        test_acc=float(acc_row["test_acc"]),
        loss_at_acc_epoch=float(acc_row["test_loss"]),
    )


# ----------------------------------------------------------------------------- who trained it


CODE_PATHS = ("cifar_helpers", "notebooks", "benchmarks")  # a run rewrites its own results: they are no code


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=paths.REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def code_revision() -> dict[str, Any]:
    """{"git_commit": HEAD, "uncommitted_code": bool}; None for what cannot be told.

    Only the code counts as a change (the package, the notebooks, the benchmarks). A copy without .git
    (the GPU machine's) takes the commit from $GIT_COMMIT, if the caller set it."""
    head = _git("rev-parse", "HEAD")
    if head is None:
        return {"git_commit": os.environ.get("GIT_COMMIT") or None, "uncommitted_code": None}
    status = _git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    return {"git_commit": head.strip() or None, "uncommitted_code": None if status is None else bool(status.strip())}


def describe(revision: Mapping[str, Any]) -> str:
    """One line for a report: "<commit>", "<commit> (with uncommitted code changes)" or "unknown"."""
    commit = revision.get("git_commit") or "unknown"
    return commit + (" (with uncommitted code changes)" if revision.get("uncommitted_code") else "")


def session_facts(device: torch.device) -> dict[str, Any]:
    """What this process trains with, as the record keeps it for the epochs it trains."""
    return {"device_name": device_name(device), "cuda_fp32_math": cuda_fp32_math(device),
            # the CPU's kernels make its numbers: a change of processor starts a new span of sessions
            **({"processor": processor_name()} if device.type == "cpu" else {}),
            **code_revision(),  # git_commit, uncommitted_code
            # plain str: the checkpoint holds this, and torch.__version__'s class is no weights_only type
            "versions": {"python": platform.python_version(), "torch": str(torch.__version__),
                         "torchvision": str(torchvision.__version__)}}


def device_names(sessions: Sequence[Mapping[str, Any]]) -> str:
    """One device name, or each with the epochs it trained when a resumed run changed device."""
    spans: list[list] = []  # [name, first epoch, last epoch]
    for session in sessions:
        if spans and spans[-1][0] == session["device_name"]:
            spans[-1][2] = session["last_epoch"]
        else:
            spans.append([session["device_name"], session["first_epoch"], session["last_epoch"]])
    if len(spans) == 1:
        return spans[0][0]
    return "; ".join(f"{name}, epoch{f' {first}' if first == last else f's {first}-{last}'}"
                     for name, first, last in spans)


def recorded_sessions(record: Mapping[str, Any]) -> list[dict]:
    """Who trained which epochs; a record from before sessions were kept names only the setup that wrote it."""
    if record.get("sessions"):
        return record["sessions"]
    return [{"first_epoch": 1, "last_epoch": len(record["history"]), "device_name": record.get("device_name"),
             "git_commit": record.get("git_commit"), "uncommitted_code": record.get("uncommitted_code"),
             "unrecorded": True}]


# ----------------------------------------------------------------------------- the predictions entry

MISTAKES_KEPT = 100  # the most confident mistakes stored per run: enough for any gallery


def confusion_matrix(labels: Sequence[int], predicted: Sequence[int], n_classes: int = 10) -> np.ndarray:
    """counts[true, predicted], int64."""
    labels, predicted = np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    if labels.shape != predicted.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predicted.shape} differ in shape")
    return np.bincount(labels * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def confident_mistakes(labels: Sequence[int], predicted: Sequence[int], confidence: Sequence[float],
                       k: int = MISTAKES_KEPT) -> list[list]:
    """The `k` wrong predictions with the highest confidence: [[index, true, predicted, confidence], ...].

    Ties keep the lower index first, so the list is the same on every machine."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    confidence = np.asarray(confidence, dtype=np.float64)
    wrong = np.flatnonzero(labels != predicted)
    order = wrong[np.lexsort((wrong, -confidence[wrong]))][:k]
    return [[int(i), int(labels[i]), int(predicted[i]), round(float(confidence[i]), 6)] for i in order]


def prediction_record(labels, predicted, confidence, epoch: int, n_classes: int = 10) -> dict[str, Any]:
    """The compact `predictions` entry of a record: the 10×10 confusion matrix (counts; rows the true class,
    columns the predicted one) and the most confident mistakes, of the weights of `epoch`."""
    return {
        "epoch": int(epoch),
        "confusion": confusion_matrix(labels, predicted, n_classes).tolist(),
        "mistakes": confident_mistakes(labels, predicted, confidence),
    }


# ----------------------------------------------------------------------------- building it


def network_fields(identity: RunIdentity, num_parameters: int) -> dict[str, Any]:
    """The record's entries on the network trained; a model of your own adds its label and its architecture's
    text (whose hash its `architecture` holds)."""
    return {"num_parameters": num_parameters, "architecture": identity.architecture,
            **(identity.network.record_fields() if identity.network else {})}


def _best_entries(history: list[dict]) -> tuple[dict | None, dict | None]:
    """`best_loss` and `best_acc`, as `best_points` defines them."""
    if not any(math.isfinite(row["test_loss"]) for row in history):
        return None, None  # diverged from the first epoch: nothing to call best
    best = best_points({"history": history})
    return ({"epoch": best.loss_epoch, "test_loss": best.test_loss, "test_acc": best.acc_at_loss_epoch},
            {"epoch": best.acc_epoch, "test_loss": best.loss_at_acc_epoch, "test_acc": best.test_acc})


def build_record(cfg: TrainConfig, identity: RunIdentity, *, num_parameters: int, device_type: str,
                 data_source: str, data_digest: str, history: list[dict], sessions: list[dict],
                 complete: bool, stopped_early: bool, restored: dict | None = None,
                 predictions: dict | None = None, seconds: float = 0.0) -> dict[str, Any]:
    """The record of a run so far. `sessions` are the setups that trained its epochs (`session_facts` with
    first and last epoch), not the one that writes a finished run's record again; `restored` the best
    weights' test loss and accuracy, and `predictions` theirs (`prediction_record`); `seconds` this session's."""
    best_loss, best_acc = _best_entries(history)
    last = sessions[-1]
    return {
        "schema": SCHEMA_VERSION,
        "model": cfg.model,
        "complete": complete,
        "epochs_planned": cfg.epochs,
        "fingerprint": identity.fingerprint,
        "params": cfg.to_dict(),
        **network_fields(identity, num_parameters),
        "device": device_type,
        "device_name": device_names(sessions),
        "cuda_fp32_math": last["cuda_fp32_math"],
        "data_source": data_source,
        "data_digest": data_digest,
        "versions": last["versions"],
        "git_commit": last["git_commit"],
        "uncommitted_code": last.get("uncommitted_code"),  # None in older checkpoints
        "sessions": [{**{k: s.get(k) for k in SESSION_KEYS}, **{k: s[k] for k in LATER_SESSION_KEYS if k in s}}
                     for s in sessions],
        "history": history,
        "best_loss": best_loss,
        "best_acc": best_acc,
        "restored_best": restored,
        "stopped_early": stopped_early,
        "stop_epoch": len(history),
        "total_seconds": sum(r["train_seconds"] + r["eval_seconds"] for r in history),
        "wall_seconds_this_session": seconds,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "predictions": predictions,
    }
