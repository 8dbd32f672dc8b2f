"""The library the cifar-workbook notebooks call, and its one door for them.

The notebooks stay thin: they set parameters, call the functions below and show
what comes back. Everything worth testing lives in the layers, bottom to top:
`core` (errors, paths, files, hashes, progress) < `data` < `models` < `engine`
< `report` < `workbook`; README "Layout" says what each module owns.

    from cifar_helpers import load_cifar10, train_model, training_run

Each name is imported from its home module on first use, so `import cifar_helpers`
stays cheap (no torch, no pandas) for the tools that need none of it. Imported in
a Jupyter kernel, it shows the workbook's own errors and warnings as short
messages (see `core.errors`).
"""

from __future__ import annotations

import importlib
from typing import Any

from cifar_helpers.core.errors import install_notebook_display as _install_notebook_display

__version__ = "0.1.0"

# What the notebooks call, by home module: the one list of them (tests/test_facade.py holds the notebooks to it).
_EXPORTS = {
    "cifar_helpers.data.official": ("CIFAR10_CLASSES",),
    "cifar_helpers.data.cifar10": ("counts", "load_cifar10"),
    "cifar_helpers.models": ("build_model", "compare_blocks", "model_summary"),
    "cifar_helpers.models.your_model": ("your_model_summary",),
    "cifar_helpers.engine.parameters": ("check_parameters", "training_run"),
    "cifar_helpers.engine.your_model": ("your_model_run",),
    "cifar_helpers.engine.train": ("train_model",),
    "cifar_helpers.report.chapter": (
        "best_epoch_sentence", "block_comparison_table", "bottleneck_verdict", "data_summary", "metrics_table",
        "mistakes_figure", "normalization_table", "per_class_accuracy_table", "protocol_table", "report_comparison",
        "results_overview", "summary_markdown", "table1_views", "your_model_comparison",
    ),
    "cifar_helpers.report.diagrams": ("custom_resnet_to_draw", "draw_bottleneck_block", "draw_custom_resnet"),
    "cifar_helpers.report.figures": (
        "accuracy_curves", "confusion_matrices", "confusion_matrix_figure", "fig1_loss_curves",
        "fig4_custom_resnet_loss", "plot_history", "sample_grid",
    ),
    "cifar_helpers.report.predictions": ("marked_per_class", "per_class_table", "write_per_class"),
    "cifar_helpers.report.results": ("load_results", "table1", "write_table1"),
    "cifar_helpers.report.style": ("save_and_show",),
}
_HOMES = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    """`cifar_helpers.<name>` from its home module, imported now (PEP 562)."""
    if name not in _HOMES:
        raise AttributeError(f"module 'cifar_helpers' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # the next lookup finds it without this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


_install_notebook_display()
