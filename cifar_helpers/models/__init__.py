"""The report's four models, built by name.

    build_model("custom_resnet", dropout=0.2)

One module per family (dnn, cnn, resnet, custom_resnet), each with a factory
function of the same name; `summary` counts parameters and multiply-adds and
traces stage shapes.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Callable

from torch import nn

from cifar_helpers.models.catalog import MODEL_NAMES

from cifar_helpers.models.cnn import CNN, cnn
from cifar_helpers.models.custom_resnet import Bottleneck, CustomResNet, custom_resnet
from cifar_helpers.models.dnn import DNN, dnn
from cifar_helpers.models.resnet import BasicBlock, ResNet, resnet
from cifar_helpers.models.summary import (
    bottleneck_claim_holds,
    compare_blocks,
    count_macs,
    count_parameters,
    model_summary,
    trace_model,
)


_FACTORIES: dict[str, Callable[..., nn.Module]] = {
    "dnn": dnn,
    "cnn": cnn,
    "resnet": resnet,
    "custom_resnet": custom_resnet,
}


def model_options(name: str) -> dict[str, Any]:
    """The options `build_model(name, ...)` accepts, with their defaults."""
    factory = _factory(name)
    return {key: p.default for key, p in inspect.signature(factory).parameters.items()}


def architecture(name: str, **options: Any) -> dict[str, Any]:
    """Every option of `name`'s factory, defaults filled in, as JSON has them (tuples as lists).

    What a run's network is, even after a factory default changes: results files and checkpoints
    record it, and a run resumes or is skipped only where it matches."""
    return json.loads(json.dumps({**model_options(name), **options}))


def build_model(name: str, **options: Any) -> nn.Module:
    """Build one of MODEL_NAMES; `options` go to that model's factory function."""
    accepted = model_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(
            f"model {name!r} got unknown option(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(f'{k}={v!r}' for k, v in accepted.items())}"
        )
    return _FACTORIES[name](**options)


def _factory(name: str) -> Callable[..., nn.Module]:
    try:
        return _FACTORIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}") from None


__all__ = [
    "MODEL_NAMES",
    "build_model",
    "model_options",
    "architecture",
    "DNN",
    "CNN",
    "ResNet",
    "CustomResNet",
    "BasicBlock",
    "Bottleneck",
    "dnn",
    "cnn",
    "resnet",
    "custom_resnet",
    "count_parameters",
    "count_macs",
    "trace_model",
    "compare_blocks",
    "bottleneck_claim_holds",
    "model_summary",
]
