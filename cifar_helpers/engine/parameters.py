"""Notebook parameters: their names, and the one mapping from them to a training run.

A notebook's `parameters` cell holds UPPERCASE names with plain literal
defaults; papermill and `make run` override them. The next cell checks them:

    run = training_run("dnn", globals())              # a training notebook
    check_parameters("06_analysis", globals())         # 04 and 06

Each refuses, before any work, a name the notebook does not take, in any case
(papermill's `-p epochs 1` would otherwise leave EPOCHS at 100), naming the
closest one it takes. A notebook takes the names its parameters cell declares
and, if it trains, the fast recipe's (`engine.fast.RECIPE_PARAMETERS`), which
the engine knows and no notebook need declare. In a kernel the names checked are those
set since the parameters cell last ran, papermill's injected cell among them
(`names_set`): a name that an earlier run of the parameters cell left in the
kernel, a typo fixed since, is not one of them.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from cifar_helpers.core.paths import NOTEBOOK_DIR, repo_path, require_data_dir
from cifar_helpers.engine.config import ConfigError, TrainConfig, check_stop_after
from cifar_helpers.engine.device import select_device
from cifar_helpers.engine.fast import RECIPE_PARAMETERS
from cifar_helpers.models.specs import NOTEBOOKS

# Parameters that change the numbers a run produces: name -> TrainConfig field.
PROTOCOL_PARAMETERS = {
    "SEED": "seed", "EPOCHS": "epochs", "BATCH_SIZE": "batch_size", "OPTIMIZER": "optimizer", "LR": "lr",
    "WEIGHT_DECAY": "weight_decay", "SCHEDULER": "scheduler", "PATIENCE": "patience", "STEP_SIZE": "step_size",
    "GAMMA": "gamma", "AUGMENT": "augment", "SUBSET": "subset", "AMP": "amp", "DETERMINISTIC": "deterministic",
    "STEP_MODE": "step_mode", "EVAL_BATCH_SIZE": "eval_batch_size", "FLUSH_DENORMALS": "flush_denormals",
    **RECIPE_PARAMETERS,  # MOMENTUM, NESTEROV, WARMUP_FRACTION: the fast recipe's, which no notebook need declare
}
# Model options (TrainConfig.model_options): name -> the factory's keyword.
MODEL_PARAMETERS = {"DROPOUT": "dropout"}
# Where and how far to run; none of them changes a number.
RUN_PARAMETERS = ("DATA_DIR", "DEVICE", "RESULTS_DIR", "CHECKPOINT_DIR", "STOP_AFTER")
# The analysis notebook's own.
ANALYSIS_PARAMETERS = ("RESULTS_DIR", "FIGURES_DIR")
# Notebook 07's own: which model of your own, and which of the report's protocols trains it (engine.your_model).
YOUR_MODEL_PARAMETERS = ("MODEL_LABEL", "PROTOCOL")

KNOWN_PARAMETERS = frozenset((*PROTOCOL_PARAMETERS, *MODEL_PARAMETERS, *RUN_PARAMETERS, *ANALYSIS_PARAMETERS,
                              *YOUR_MODEL_PARAMETERS))
_PARAMETER_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
TRAINING_NOTEBOOKS = {model: notebook for notebook, model in NOTEBOOKS if model}
# The calls that check a notebook's parameters; a cell that makes one is where a block of parameters ends.
CHECKS = ("training_run", "check_parameters", "your_model_run")


def unknown_parameter_message(name: str, known: Iterable[str], where: str) -> str:
    """'unknown parameter EPOCH in <where>; did you mean EPOCHS?' (closest by spelling, any case)."""
    known = sorted(set(known))
    by_upper = {k.upper(): k for k in known}
    close = difflib.get_close_matches(str(name).upper(), list(by_upper), n=1, cutoff=0.6)
    hint = f"did you mean {by_upper[close[0]]}?" if close else f"known: {', '.join(known)}."
    return f"unknown parameter {name!r} in {where}; {hint} Parameter names are UPPERCASE, as in the notebooks."


def accepted_parameters(notebook: str, declared: Iterable[str]) -> set[str]:
    """The names `notebook` takes: those its parameters cell `declared` and, in a training notebook, the
    fast recipe's, which the engine knows (a profile such as params/fast.yaml passes them to 05)."""
    return set(declared) | (set(RECIPE_PARAMETERS) if notebook in TRAINING_NOTEBOOKS.values() else set())


def check_names(names: Iterable[str], known: Iterable[str], where: str) -> None:
    """Raise ConfigError for the first name not in `known`."""
    known = set(known)
    for name in names:
        if name not in known:
            raise ConfigError(unknown_parameter_message(name, known, where))


def _notebook_path(notebook: str | Path) -> Path:
    return Path(notebook) if str(notebook).endswith(".ipynb") else NOTEBOOK_DIR / f"{notebook}.ipynb"


def parameters_cell(notebook: str | Path) -> str:
    """The source of a notebook's cell tagged `parameters`; `notebook` is a notebook name ("01_dnn") or
    the path of an .ipynb file."""
    path = _notebook_path(notebook)
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    raise ConfigError(f"{path.name} has no cell tagged 'parameters'")


def declared_parameters(notebook: str | Path) -> dict[str, Any]:
    """A notebook's `parameters` cell: name -> default value (the cell holds `NAME = literal` lines only)."""
    declared = {}
    for statement in ast.parse(parameters_cell(notebook)).body:
        target = statement.targets[0] if isinstance(statement, ast.Assign) and len(statement.targets) == 1 else None
        if not isinstance(target, ast.Name) or not _is_literal(statement.value):
            raise ConfigError(f"{_notebook_path(notebook).name}: the parameters cell must hold `NAME = literal` "
                              f"lines only, not {ast.unparse(statement)!r}")
        declared[target.id] = ast.literal_eval(statement.value)
    return declared


def _is_literal(node: ast.AST | None) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return node is not None


def _assigned(source: str) -> tuple[set[str], bool]:
    """The names a cell assigns at its top level, and whether it holds nothing but `NAME = literal` lines
    (as a parameters cell and papermill's injected one do; a bare string aside)."""
    try:
        statements = ast.parse(source).body
    except SyntaxError:
        return set(), False
    names: set[str] = set()
    only_literals = True
    for statement in statements:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue
        if not isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            only_literals = False
            continue
        only_literals = only_literals and _is_literal(statement.value)
        for target in getattr(statement, "targets", None) or [statement.target]:
            elements = target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
            only_literals = only_literals and all(isinstance(element, ast.Name) for element in elements)
            names.update(element.id for element in elements if isinstance(element, ast.Name))
    return names, only_literals


def _calls_a_check(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return any(isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in CHECKS
               for node in ast.walk(tree))


def _alike(source: str, reference: str) -> bool:
    """Is `source` the cell `reference`, perhaps edited (a fixed typo, another value)?"""
    matcher = difflib.SequenceMatcher(None, source, reference, autojunk=False)
    return matcher.real_quick_ratio() >= 0.6 and matcher.quick_ratio() >= 0.6 and matcher.ratio() >= 0.6


def names_set(history: list[str], parameters_source: str) -> set[str]:
    """The parameter names that the cells run before the running one (`history[-1]`, IPython's `In`) set.

    They are the UPPERCASE names assigned since the parameters cell last ran (the latest cell that is
    `parameters_source`, perhaps edited; the whole history when none is), and every name in the cells
    of nothing but `NAME = literal` lines just before the running one: the parameters cell, papermill's
    injected cell after it (`-p epochs 1`), a cell that sets a parameter again. Runs of a check cell
    just before are passed over. So a name that an earlier run of the parameters cell left in the
    kernel, a typo fixed since, is not among them."""
    cells = history[:-1]
    start = next((i for i in range(len(cells) - 1, -1, -1) if _alike(cells[i], parameters_source)), 0)
    names: set[str] = set()
    in_block, block_started = True, False
    for source in reversed(cells[start:]):
        assigned, only_literals = _assigned(source)
        names |= {name for name in assigned if _PARAMETER_NAME.match(name)}
        if not in_block:
            continue
        if _calls_a_check(source):
            in_block = not block_started
        elif only_literals:
            names |= assigned
            block_started = block_started or bool(assigned)
        else:
            in_block = False
    return names


def check_parameters(notebook: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The values of `notebook`'s parameters in `namespace` (its globals()), after refusing, in one line,
    any name set there that the notebook does not take (`accepted_parameters`).

    In a kernel the names set are those `names_set` finds in IPython's history; in a plain mapping,
    its UPPERCASE names and any that are a declared name in another case. Every declared name present
    counts; an undeclared one (the fast recipe's) only when set, not when an earlier run left it behind."""
    declared = declared_parameters(notebook)
    history = namespace.get("In")
    if isinstance(history, list) and history and all(isinstance(cell, str) for cell in history):
        given = names_set(history, parameters_cell(notebook)) & set(namespace)
    else:
        given = {name for name, value in namespace.items()
                 if (_PARAMETER_NAME.match(name) or name.upper() in declared) and not callable(value)}
    check_names(sorted(given), accepted_parameters(notebook, declared), f"notebooks/{notebook}.ipynb")
    return {name: namespace[name] for name in [*declared, *sorted(given - set(declared))] if name in namespace}


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


def training_config(model: str, params: Mapping[str, Any]) -> TrainConfig:
    """The TrainConfig that a training notebook's parameters (UPPERCASE names) give."""
    check_names(params, set(PROTOCOL_PARAMETERS) | set(MODEL_PARAMETERS) | set(RUN_PARAMETERS),
                f"notebook for {model}")
    overrides = {field: params[name] for name, field in PROTOCOL_PARAMETERS.items() if name in params}
    options = {option: params[name] for name, option in MODEL_PARAMETERS.items() if name in params}
    if options:
        overrides["model_options"] = options
    return TrainConfig.for_model(model, **overrides)


def checked_values(model: str, params: Mapping[str, Any]) -> tuple[TrainConfig, torch.device, int | None]:
    """The config, device and STOP_AFTER a training notebook's parameters give; ConfigError or DeviceError
    for the first value that cannot work. Touches no folder, so `make run` checks every job with it first."""
    config = training_config(model, params)
    stop_after = check_stop_after(params.get("STOP_AFTER"))
    return config, select_device(params.get("DEVICE", "auto")), stop_after


def training_run(model: str, namespace: Mapping[str, Any]) -> TrainingRun:
    """Check a training notebook's parameters and build its run; fails before any work."""
    if model not in TRAINING_NOTEBOOKS:
        raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(TRAINING_NOTEBOOKS)}")
    params = check_parameters(TRAINING_NOTEBOOKS[model], namespace)
    config, device, stop_after = checked_values(model, params)
    return TrainingRun(config=config, device=device, stop_after=stop_after, **run_folders(params))


def run_folders(params: Mapping[str, Any]) -> dict[str, Path]:
    """A training notebook's folders from its parameters: the data (which must exist), results and checkpoints."""
    return {
        "data_dir": require_data_dir(params.get("DATA_DIR")),
        "results_dir": repo_path(params.get("RESULTS_DIR"), "results"),
        "checkpoint_dir": repo_path(params.get("CHECKPOINT_DIR"), "checkpoints"),
    }
