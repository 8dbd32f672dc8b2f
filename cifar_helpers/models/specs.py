"""The report's four models, one `ModelSpec` each: everything the workbook knows about a model, in one place.

    SPECS["custom_resnet"].label       # "Custom ResNet"
    SPECS["custom_resnet"].factory     # CustomResNet: its keyword defaults are the model's options

Everything that iterates over the models, names one, or maps it to its notebook, protocol, report numbers
or place in a figure reads it from here. A spec names its training protocol (engine.config.PROTOCOLS) and
holds the report's numbers as plain data, so this layer imports nothing above it. A model's colour and line
style follow from its place in SPECS (report.style.model_style). A model without a spec (one a student
defines) is shown under the label its results file gives, after these four.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from torch import nn

from cifar_helpers.models.cnn import CNN
from cifar_helpers.models.custom_resnet import CustomResNet
from cifar_helpers.models.dnn import DNN
from cifar_helpers.models.resnet import ResNet


@dataclass(frozen=True)
class ReportRow:
    """One row of the report's Table 1, as printed (accuracy in percent), with the epoch its text gives."""

    test_loss: float
    acc_pct: float
    epoch: int
    note: str = ""


@dataclass(frozen=True)
class ModelSpec:
    name: str  # results/<name>.json, checkpoints/<name>/, build_model(name)
    label: str  # in tables, figures and sentences
    notebook: str  # the notebook that trains it, notebooks/<notebook>.ipynb
    factory: type[nn.Module]  # the class; its keyword defaults are the options build_model accepts
    protocol: str  # the name of its training protocol in engine.config.PROTOCOLS
    report: ReportRow  # the report's own numbers for it

    @property
    def notebook_path(self) -> str:
        return f"notebooks/{self.notebook}.ipynb"


# The report's own numbers are written down only here. Source: the report's Table 1 ("최종 실험 결과") for
# loss and accuracy and its sections 2.2.1-2.2.3 and 3.3 for the epochs; restated in docs/protocol.md.
SPECS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("dnn", "DNN", "01_dnn", DNN, "lecture",
              ReportRow(1.3459, 52.64, 17, "loss diverged after epoch 17")),
    # Table 1 says 77.17%, the text of section 2.2.2 says 77.14%; we compare with the table.
    ModelSpec("cnn", "CNN", "02_cnn", CNN, "lecture",
              ReportRow(0.6787, 77.17, 67, "section 2.2.2 gives 77.14%")),
    ModelSpec("resnet", "ResNet", "03_resnet", ResNet, "lecture",
              ReportRow(0.5801, 80.85, 11, "test loss rose after epoch 11 (overfitting)")),
    ModelSpec("custom_resnet", "Custom ResNet", "05_custom_resnet", CustomResNet, "custom_resnet",
              ReportRow(0.3053, 90.47, 62, "lowest loss and highest accuracy in the same epoch")),
)}

MODEL_NAMES = tuple(SPECS)
LECTURE_MODELS = tuple(name for name, spec in SPECS.items() if spec.protocol == "lecture")  # report section 2
# The notebooks that train none of the report's models (07 trains one of yours, named by its parameters); with
# the specs' notebooks they make the workbook, in run order: by number, but 06, which shows every other's
# results, last.
OTHER_NOTEBOOKS = ("04_custom_resnet_architecture", "06_analysis", "07_your_model")
NOTEBOOKS = tuple(sorted([(spec.notebook, name) for name, spec in SPECS.items()]
                         + [(notebook, None) for notebook in OTHER_NOTEBOOKS],
                         key=lambda pair: (pair[0] == "06_analysis", pair[0])))  # (notebook, its model or None)
# Run by `make run` only when a profile asks: gives it parameters under `notebooks:`, or names it in `only:`.
ON_REQUEST = ("07_your_model",)


def in_model_order(names: Iterable[str]) -> list[str]:
    """`names` with the report's models first, in SPECS's order, then any others sorted."""
    names = set(names)
    return [name for name in SPECS if name in names] + sorted(names - set(SPECS))
