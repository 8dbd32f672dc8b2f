"""Your own model: any `nn.Module` that gives 10 class scores per image, described for the run record.

    check_outputs(model, "Wide CNN")            # one-line YourModelError unless 2 images give 2×10 scores
    print(your_model_summary(model, "Wide CNN"))  # the same check, then its stages, parameters and multiply-adds
    network = describe_model(model, "Wide CNN")
    network.architecture                        # what a checkpoint must match to resume it

The report's four models have factories in this package; yours has none, so the record keeps what shows it
and tells it apart: its label, its parameter count, its architecture's text (`str(model)`: every layer with
its sizes) and a hash of that text. A checkpoint of a model whose text changed since (another width, another
layer) is never resumed. `str(model)` does not show `forward`: a change there alone goes unseen, so give
such a model a new label (or retrain it with FORCE=1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cifar_helpers.core.errors import WorkbookError
from cifar_helpers.core.hashing import short_hash
from cifar_helpers.models.specs import SPECS
from cifar_helpers.models.summary import count_parameters, model_summary

NUM_CLASSES = 10
CHECK_BATCH = (2, 3, 32, 32)  # two CIFAR-10 images: a batch, so that batch norm's training mode would work too
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class YourModelError(WorkbookError, ValueError):
    """A model of your own that cannot train here; the message says why."""


def your_model_name(label: Any) -> str:
    """The name a label gives its files: "Wide CNN" -> "wide_cnn" (results/wide_cnn.json, checkpoints/wide_cnn/).

    Not one of the report's models' names: a model of your own never overwrites their results."""
    if not isinstance(label, str) or not re.search(r"[A-Za-z]", label):
        raise YourModelError(f"MODEL_LABEL must name your model in letters, such as 'Wide CNN'; got {label!r}")
    name = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    if name[0].isdigit():  # a name starts with a letter: "2x CNN" -> "model_2x_cnn"
        name = f"model_{name}"
    if name in SPECS:
        raise YourModelError(f"MODEL_LABEL {label!r} would write over the report's {SPECS[name].label} "
                             f"(results/{name}.json): give your model another name, such as 'My {label}'")
    return name


def is_your_model_name(name: Any) -> bool:
    """Can `name` be a model of your own's (lowercase letters, digits and _, not a report model's)?"""
    return isinstance(name, str) and bool(_NAME.match(name)) and name not in SPECS


def check_outputs(model: Any, label: str) -> None:
    """Raise a one-line YourModelError unless `model` turns a batch of CIFAR-10 images into 10 scores each.

    The batch is two images of zeros on the model's device, run in eval mode without gradients (batch
    norm's running statistics stay as they are); the model's mode is restored after."""
    if not isinstance(model, nn.Module):
        raise YourModelError(f"model= must be a torch.nn.Module (your network), got {type(model).__name__}")
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            outputs = model(torch.zeros(CHECK_BATCH, device=device))
    except Exception as exc:  # any error of the student's forward: shown in one line, with its kind
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise YourModelError(f"{label} cannot take a batch of CIFAR-10 images ({_shape(CHECK_BATCH)}): "
                             f"{type(exc).__name__}: {first_line}") from None
    finally:
        model.train(training)
    wanted = (CHECK_BATCH[0], NUM_CLASSES)
    if not isinstance(outputs, torch.Tensor):
        raise YourModelError(f"{label} returns a {type(outputs).__name__} for a batch of images; it must return "
                             f"a tensor of class scores, {_shape(wanted)} for {CHECK_BATCH[0]} images")
    if tuple(outputs.shape) != wanted:
        raise YourModelError(f"{label} gives outputs of shape {_shape(outputs.shape)} for {CHECK_BATCH[0]} images "
                             f"({_shape(CHECK_BATCH)}); it must give {_shape(wanted)}: one score per CIFAR-10 "
                             "class for each image")


def _shape(shape) -> str:
    return "×".join(str(int(n)) for n in shape)


@dataclass(frozen=True)
class ModelDescription:
    """What the record keeps of a model of your own."""

    label: str  # in tables and figures
    class_name: str
    num_parameters: int
    text: str  # str(model)

    @property
    def text_hash(self) -> str:
        return short_hash(self.text)

    @property
    def architecture(self) -> dict[str, Any]:
        """The network, as the record and checkpoints compare it: a changed one never resumes."""
        return {"class": self.class_name, "num_parameters": self.num_parameters, "text_hash": self.text_hash}

    def record_fields(self) -> dict[str, Any]:
        """The results file's entries beside `architecture`: the label tables and figures show, and the text."""
        return {"label": self.label, "architecture_text": self.text}


def describe_model(model: nn.Module, label: str | None = None) -> ModelDescription:
    """`model` as the record keeps it; `label` defaults to its class name."""
    return ModelDescription(label=label or type(model).__name__, class_name=type(model).__name__,
                            num_parameters=count_parameters(model), text=str(model))


def your_model_summary(model: nn.Module, label: str) -> str:
    """`model_summary` of a model of your own (its stages, parameters and multiply-adds), once `check_outputs`
    has passed: a model that cannot work stops here in one line, before any data is read."""
    check_outputs(model, label)
    return model_summary(model)
