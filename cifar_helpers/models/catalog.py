"""The workbook's one list of notebooks and models: their order, names and labels.

Everything that iterates over the models or maps a model to its notebook
reads it from here. No torch: the analysis side imports it too.
"""

from __future__ import annotations

NOTEBOOKS = (  # (notebook, the model it trains or None), in run order
    ("01_dnn", "dnn"),
    ("02_cnn", "cnn"),
    ("03_resnet", "resnet"),
    ("04_custom_resnet_architecture", None),
    ("05_custom_resnet", "custom_resnet"),
    ("07_your_model", None),  # a model of your own, named by its parameters; before 06, which shows it too
    ("06_analysis", None),
)
# Run by `make run` only when a profile asks: gives it parameters under `notebooks:`, or names it in `only:`.
ON_REQUEST = ("07_your_model",)
MODEL_NAMES = tuple(model for _, model in NOTEBOOKS if model)
MODEL_LABELS = {"dnn": "DNN", "cnn": "CNN", "resnet": "ResNet", "custom_resnet": "Custom ResNet"}
MODEL_NOTEBOOKS = {model: f"notebooks/{notebook}.ipynb" for notebook, model in NOTEBOOKS if model}
LECTURE_MODELS = ("dnn", "cnn", "resnet")  # the report's section 2, one shared protocol
