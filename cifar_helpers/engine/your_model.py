"""Training a model of your own: its config from one of the report's protocols, and notebook 07's parameters.

    config = your_model_config("Wide CNN", "lecture", epochs=10)
    result = train_model(config, data, model=WideCNN())     # any nn.Module with 10 outputs

Notebook 07 builds both from its parameters cell:

    run = your_model_run(globals())
    result = train_model(run.config, data, model=model, **run.train_kwargs())

The config names the model's files ("Wide CNN" -> results/wide_cnn.json, checkpoints/wide_cnn/); the
record keeps its label, parameter count and architecture (models.your_model).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from cifar_helpers.engine.config import PROTOCOLS, ConfigError, TrainConfig, check_stop_after
from cifar_helpers.engine.device import select_device
from cifar_helpers.engine.parameters import PROTOCOL_PARAMETERS, TrainingRun, check_parameters, run_folders
from cifar_helpers.models.specs import MODEL_NAMES, SPECS
from cifar_helpers.models.your_model import ModelDescription, check_outputs, describe_model, your_model_name

NOTEBOOK = "07_your_model"


def _protocol_names() -> str:
    """"'lecture' (notebooks 01, 02, 03) or 'custom_resnet' (notebook 05)": the protocols and who uses them."""
    choices = []
    for protocol in PROTOCOLS:
        numbers = [spec.notebook[:2] for spec in SPECS.values() if spec.protocol == protocol]
        choices.append(f"{protocol!r} (notebook{'s' * (len(numbers) > 1)} {', '.join(numbers)})")
    return " or ".join(choices)


def your_model_config(label: str, protocol: str = "lecture", **overrides: Any) -> TrainConfig:
    """The config that trains a model of your own, named by `label`, with `protocol` and `overrides`
    (TrainConfig's fields: epochs=10, lr=0.05, ...)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"PROTOCOL must be {_protocol_names()}, got {protocol!r}")
    if overrides.get("model_options"):
        raise ConfigError("a model of your own takes no model options here: set them where you build the model")
    trained_with_it = next(name for name, spec in SPECS.items() if spec.protocol == protocol)  # the report's
    report = TrainConfig.for_model(trained_with_it, **overrides)
    return dataclasses.replace(report, model=your_model_name(label), model_options={})


def your_network(cfg: TrainConfig, model: nn.Module | None, label: str | None) -> ModelDescription | None:
    """What train_model trains: None for the report's model that `cfg` names, else `model` described and
    checked (10 outputs on a CIFAR batch); one-line errors for a config and a model that do not go together."""
    if model is None:
        if cfg.model not in MODEL_NAMES:
            raise ConfigError(f"{cfg.model!r} is none of the report's models ({', '.join(MODEL_NAMES)}): pass "
                              "your own network too, train_model(config, data, model=<nn.Module>)")
        return None
    if cfg.model in MODEL_NAMES:
        raise ConfigError(f"model= trains a network of your own, but the config is the report's {cfg.model!r}, "
                          "whose files it would overwrite: make it with your_model_config(label, protocol)")
    label = label or type(model).__name__
    check_outputs(model, label)
    return describe_model(model, label)


@dataclass(frozen=True)
class YourModelRun(TrainingRun):
    """A training run of notebook 07: the model's label besides what every training notebook needs."""

    label: str = ""

    def train_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `train_model(run.config, data, model=model, **run.train_kwargs())`."""
        return {**super().train_kwargs(), "label": self.label}


def your_model_values(params: Mapping[str, Any]) -> tuple[TrainConfig, torch.device, int | None]:
    """The config, device and STOP_AFTER that notebook 07's parameters give (parameters.checked_values for
    01-05): a protocol parameter left at None takes the value PROTOCOL gives it. Touches no folder, so
    `make run` checks 07's values with it before the first notebook runs."""
    overrides = {field: params[name] for name, field in PROTOCOL_PARAMETERS.items() if params.get(name) is not None}
    config = your_model_config(params.get("MODEL_LABEL"), params.get("PROTOCOL", "lecture"), **overrides)
    return config, select_device(params.get("DEVICE", "auto")), check_stop_after(params.get("STOP_AFTER"))


def your_model_run(namespace: Mapping[str, Any]) -> YourModelRun:
    """Check notebook 07's parameters and build its run; fails before any work."""
    params = check_parameters(NOTEBOOK, namespace)
    config, device, stop_after = your_model_values(params)
    return YourModelRun(config=config, device=device, stop_after=stop_after, label=params["MODEL_LABEL"],
                        **run_folders(params))
