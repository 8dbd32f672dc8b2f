"""The report's four models, built by name: one spec each (`specs`), one module per family.

    build_model("custom_resnet", dropout=0.2)

`specs.SPECS` holds each model's name, label, notebook, class, protocol and the report's numbers; a
model's options are its class's keyword arguments, with their defaults. `summary` counts parameters and
multiply-adds and traces stage shapes.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from torch import nn

from cifar_helpers.models.cnn import CNN
from cifar_helpers.models.custom_resnet import Bottleneck, CustomResNet
from cifar_helpers.models.dnn import DNN
from cifar_helpers.models.resnet import BasicBlock, ResNet
from cifar_helpers.models.specs import (LECTURE_MODELS, MODEL_NAMES, NOTEBOOKS, SPECS, ModelSpec, ReportRow,
                                        in_model_order)
from cifar_helpers.models.summary import (
    bottleneck_claim_holds,
    compare_blocks,
    count_macs,
    count_parameters,
    model_summary,
    trace_model,
)


def model_options(name: str) -> dict[str, Any]:
    """The options `build_model(name, ...)` accepts, with their defaults: its class's keyword arguments."""
    parameters = inspect.signature(_spec(name).factory).parameters
    return {key: p.default for key, p in parameters.items() if p.kind is not p.VAR_KEYWORD}


def architecture(name: str, **options: Any) -> dict[str, Any]:
    """Every option of `name`'s class, defaults filled in, as JSON has them (tuples as lists).

    What a run's network is, even after a default changes: results files and checkpoints
    record it, and a run resumes or is skipped only where it matches."""
    return json.loads(json.dumps({**model_options(name), **options}))


def build_model(name: str, **options: Any) -> nn.Module:
    """Build one of MODEL_NAMES; `options` go to that model's class."""
    accepted = model_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(
            f"model {name!r} got unknown option(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(f'{k}={v!r}' for k, v in accepted.items())}"
        )
    return _spec(name).factory(**options)


def _spec(name: str) -> ModelSpec:
    try:
        return SPECS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}") from None


__all__ = [
    "SPECS",
    "ModelSpec",
    "ReportRow",
    "MODEL_NAMES",
    "LECTURE_MODELS",
    "NOTEBOOKS",
    "in_model_order",
    "build_model",
    "model_options",
    "architecture",
    "DNN",
    "CNN",
    "ResNet",
    "CustomResNet",
    "BasicBlock",
    "Bottleneck",
    "count_parameters",
    "count_macs",
    "trace_model",
    "compare_blocks",
    "bottleneck_claim_holds",
    "model_summary",
]
