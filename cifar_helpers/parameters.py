"""Notebook parameters: their names, and the one mapping from them to a training run.

A training notebook's `parameters` cell holds UPPERCASE names with plain
literal defaults; papermill and `make run` override them. The next cell calls

    run = training_run("dnn", globals())

which reads every UPPERCASE name of the notebook's namespace, refuses a name
it does not know (naming the closest known one, so `EPOCH = 1` fails instead of
silently training 100 epochs), and builds the `TrainConfig`, the device and
the folders, before any work.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from .config import ConfigError, TrainConfig, check_stop_after
from .device import select_device
from .paths import repo_path, require_data_dir

# Parameters that change the numbers a run produces: name -> TrainConfig field.
PROTOCOL_PARAMETERS = {
    "SEED": "seed", "EPOCHS": "epochs", "BATCH_SIZE": "batch_size", "OPTIMIZER": "optimizer", "LR": "lr",
    "MOMENTUM": "momentum", "NESTEROV": "nesterov", "WEIGHT_DECAY": "weight_decay", "SCHEDULER": "scheduler",
    "WARMUP_FRACTION": "warmup_fraction", "PATIENCE": "patience", "STEP_SIZE": "step_size", "GAMMA": "gamma",
    "AUGMENT": "augment", "SUBSET": "subset", "AMP": "amp", "DETERMINISTIC": "deterministic",
    "STEP_MODE": "step_mode", "EVAL_BATCH_SIZE": "eval_batch_size",
}
# Model options (TrainConfig.model_options): name -> the factory's keyword.
MODEL_PARAMETERS = {"DROPOUT": "dropout"}
# Where and how far to run; none of them changes a number.
RUN_PARAMETERS = ("DATA_DIR", "DEVICE", "RESULTS_DIR", "CHECKPOINT_DIR", "STOP_AFTER")
# The analysis notebook's own.
ANALYSIS_PARAMETERS = ("RESULTS_DIR", "FIGURES_DIR")

KNOWN_PARAMETERS = frozenset((*PROTOCOL_PARAMETERS, *MODEL_PARAMETERS, *RUN_PARAMETERS, *ANALYSIS_PARAMETERS))
_PARAMETER_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def unknown_parameter_message(name: str, known: Iterable[str], where: str) -> str:
    """'unknown parameter EPOCH in <where>; did you mean EPOCHS?' (closest by spelling, any case)."""
    known = sorted(set(known))
    by_upper = {k.upper(): k for k in known}
    close = difflib.get_close_matches(str(name).upper(), list(by_upper), n=1, cutoff=0.6)
    hint = f"did you mean {by_upper[close[0]]}?" if close else f"known: {', '.join(known)}."
    return f"unknown parameter {name!r} in {where}; {hint} Parameter names are UPPERCASE, as in the notebooks."


def check_names(names: Iterable[str], known: Iterable[str], where: str) -> None:
    """Raise ConfigError for the first name not in `known`."""
    known = set(known)
    for name in names:
        if name not in known:
            raise ConfigError(unknown_parameter_message(name, known, where))


@dataclass(frozen=True)
class TrainingRun:
    """What a training notebook needs, checked: the config, the device and the folders."""

    config: TrainConfig
    device: torch.device
    data_dir: Path
    results_dir: Path
    checkpoint_dir: Path
    stop_after: int | None

    def train_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `train_model(run.config, data, **run.train_kwargs())`."""
        return dict(device=self.device, results_dir=self.results_dir, checkpoint_dir=self.checkpoint_dir,
                    stop_after=self.stop_after)


def notebook_parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The UPPERCASE names of a notebook's namespace (its parameters)."""
    return {k: v for k, v in namespace.items() if _PARAMETER_NAME.match(k) and not callable(v)}


def training_config(model: str, params: Mapping[str, Any]) -> TrainConfig:
    """The TrainConfig that a training notebook's parameters (UPPERCASE names) give."""
    check_names(params, set(PROTOCOL_PARAMETERS) | set(MODEL_PARAMETERS) | set(RUN_PARAMETERS),
                f"notebook for {model}")
    overrides = {field: params[name] for name, field in PROTOCOL_PARAMETERS.items() if name in params}
    options = {option: params[name] for name, option in MODEL_PARAMETERS.items() if name in params}
    if options:
        overrides["model_options"] = options
    return TrainConfig.for_model(model, **overrides)


def training_run(model: str, namespace: Mapping[str, Any]) -> TrainingRun:
    """Check a training notebook's parameters and build its run; fails before any work."""
    params = notebook_parameters(namespace)
    config = training_config(model, params)
    stop_after = check_stop_after(params.get("STOP_AFTER"))
    return TrainingRun(
        config=config,
        device=select_device(params.get("DEVICE", "auto")),
        data_dir=require_data_dir(params.get("DATA_DIR")),
        results_dir=repo_path(params.get("RESULTS_DIR"), "results"),
        checkpoint_dir=repo_path(params.get("CHECKPOINT_DIR"), "checkpoints"),
        stop_after=stop_after,
    )
