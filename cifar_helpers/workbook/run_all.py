"""Execute the workbook's notebooks in order with papermill: `make run`.

    python -m cifar_helpers.workbook.run_all [--params params/smoke.yaml] [--force]

- Runs 01 to 06 in order into `executed/`, with a log per notebook.
- A failing notebook stops the run with its name and error.
- A training notebook whose results are complete for the same parameters is
  skipped (unless --force); an interrupted one resumes from its checkpoint.
- Without a GPU, the report's full protocol would take many hours: it says so up
  front, with an estimate measured on this machine, and stops unless --yes.

A parameter file (YAML) holds notebook parameters (UPPERCASE keys, given to
every notebook that declares them), per-notebook overrides under
`notebooks:`, and runner settings under `workbook:` (`fake_data` to generate
a data set first, `only` to run a subset of the notebooks).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from cifar_helpers.core.errors import WorkbookError
from cifar_helpers.core.files import atomic_write_json, exclusive
from cifar_helpers.core.hashing import short_hash
from cifar_helpers.core.paths import NOTEBOOK_DIR, data_dir, repo_path, require_data_dir, require_writable, shown_path
from cifar_helpers.data.cifar10 import DataSummary
from cifar_helpers.engine import checkpoint
from cifar_helpers.engine.checkpoint import BEST, LAST, exclusive_folder
from cifar_helpers.engine.config import TrainConfig, check_subset_fits
from cifar_helpers.engine.parameters import (accepted_parameters, checked_values, declared_parameters,
                                             unknown_parameter_message)
from cifar_helpers.engine.record import RunIdentity, finished_run, recorded_run, results_file
from cifar_helpers.engine.your_model import NOTEBOOK as YOUR_MODEL_NOTEBOOK, your_model_values
from cifar_helpers.models.specs import NOTEBOOKS, ON_REQUEST
from cifar_helpers.workbook.notebook_files import tidy_executed

CPU_LIMIT_SECONDS = 2 * 3600  # longer than this on the CPU needs --yes


class RunError(WorkbookError, RuntimeError):
    """Stops `make run`; the message says what failed and where to look."""


@dataclass
class Profile:
    params: dict[str, Any]
    per_notebook: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    name: str

    def for_notebook(self, notebook: str, declared: set[str]) -> dict[str, Any]:
        """The profile's values for `notebook`: those of the names it takes (`accepted_parameters`)."""
        merged = {**self.params, **self.per_notebook.get(notebook, {})}
        accepted = accepted_parameters(notebook, declared)
        return {k: v for k, v in merged.items() if k in accepted}


@dataclass(frozen=True)
class Job:
    """One notebook to run (once per seed for a training notebook), with what it runs with."""

    notebook: str
    model: str | None  # the model it trains; None for 04 and 06
    params: dict[str, Any]  # every parameter: the notebook's declared defaults, with `given` over them
    given: dict[str, Any] = field(default_factory=dict)  # what the profile (and seed) passes to papermill
    seed_folder: str = ""  # "" for the main run, "seed-<n>" for a further seed's

    @property
    def trains(self) -> str | None:
        """The model whose checkpoints and results it writes: `model`, or the one of your own that 07's
        parameters name (check_values has checked them)."""
        return your_model_values(self.params)[0].model if self.notebook == YOUR_MODEL_NOTEBOOK else self.model


class _ProfileLoader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` (no dot) as a string; the notebooks write numbers that way, so read them as floats."""


_ProfileLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)
WORKBOOK_SETTINGS = ("fake_data", "only", "executed_dir", "seeds")
FAKE_DATA_KEYS = ("dir", "n_train", "n_test", "seed")
FAKE_DATA_EXAMPLE = "fake_data: {dir: data/fake, n_train: 400, n_test: 200, seed: 0}"


def load_profile(path: str | os.PathLike | None) -> Profile:
    if not path:
        return Profile({}, {}, {}, "report protocol (notebook defaults)")
    file = repo_path(path, "params")
    if not file.is_file():
        raise RunError(f"parameter file {file} not found; see params/ for the profiles")
    try:
        raw = yaml.load(file.read_text(), Loader=_ProfileLoader) or {}
    except yaml.YAMLError as exc:
        raise RunError(f"parameter file {file} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise RunError(f"parameter file {file} must hold a mapping of NAME: value")
    per_notebook = raw.pop("notebooks", None) or {}
    settings = raw.pop("workbook", None) or {}
    if "SEEDS" in raw:  # a runner setting, not a notebook parameter
        settings = {**settings, "seeds": raw.pop("SEEDS")}
    unknown_nb = set(per_notebook) - {name for name, _ in NOTEBOOKS}
    if unknown_nb:
        raise RunError(f"{file}: unknown notebook(s) under notebooks: {sorted(unknown_nb)}")
    if not isinstance(settings, dict) or not all(isinstance(v, dict) for v in per_notebook.values()):
        raise RunError(f"{file}: 'workbook:' and each notebook under 'notebooks:' must hold a mapping")
    for name in settings:
        if name not in WORKBOOK_SETTINGS:
            raise RunError(f"{file}: {unknown_parameter_message(name, WORKBOOK_SETTINGS, 'workbook:')}")
    check_fake_data(settings.get("fake_data"), file)
    try:
        parse_only(settings.get("only"))
    except RunError as exc:
        raise RunError(f"{file}: {exc}") from None
    return Profile(raw, per_notebook, settings, shown_path(file))


def check_fake_data(fake: Any, file: Path) -> None:
    """`fake_data:` under `workbook:`: where to write the generated data set and how many images."""
    if fake is None:
        return
    if not isinstance(fake, dict):
        raise RunError(f"{file}: fake_data must be a mapping such as {FAKE_DATA_EXAMPLE}; got {fake!r}")
    for name in fake:
        if name not in FAKE_DATA_KEYS:
            raise RunError(f"{file}: {unknown_parameter_message(name, FAKE_DATA_KEYS, 'fake_data:')}")
    missing = [name for name in FAKE_DATA_KEYS[:3] if name not in fake]
    if missing:
        raise RunError(f"{file}: fake_data needs {' and '.join(missing)}, as in {FAKE_DATA_EXAMPLE}")
    if not isinstance(fake["dir"], str) or not fake["dir"]:
        raise RunError(f"{file}: fake_data's dir must be a folder name, got {fake['dir']!r}")
    for name in ("n_train", "n_test", "seed"):
        value = fake.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "seed" else 10):
            least = "0" if name == "seed" else "10 (one image per class)"
            raise RunError(f"{file}: fake_data's {name} must be a whole number >= {least}, got {value!r}")


def parse_only(value: Any, asked: Iterable[str] = ()) -> list[str]:
    """`--only 01,06` or `only: [01_dnn, 06_analysis]` (a list, or one comma-separated string): the
    notebooks to run, in run order, each named by its name or the start of it. For None, all of them but
    those that run on request (ON_REQUEST), unless `asked` (the profile's `notebooks:`) names them."""
    names = [notebook for notebook, _ in NOTEBOOKS]
    if value is None or value == "":
        return [name for name in names if name not in ON_REQUEST or name in asked]
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) for item in items):
        raise RunError(f"only: {value!r}: notebooks are named as text, such as only: [01_dnn, 06_analysis] or "
                       "only: '01' (in quotes: YAML reads 01 as the number 1)")
    prefixes = [item.strip() for item in items]
    for prefix in prefixes:
        if not prefix or not any(name.startswith(prefix) for name in names):
            raise RunError(f"only: {prefix!r} matches none of the notebooks {', '.join(names)}")
    return [name for name in names if any(name.startswith(prefix) for prefix in prefixes)]


def check_profile_names(profile: Profile, declared_by: dict[str, dict[str, Any]]) -> None:
    """Every name in the profile must be one some notebook takes (that notebook, under `notebooks:`): one it
    declares or, for a training notebook, one the engine knows (`accepted_parameters`)."""
    accepted_by = {notebook: accepted_parameters(notebook, declared) for notebook, declared in declared_by.items()}
    every = set().union(*accepted_by.values())
    for name in profile.params:
        if name not in every:
            raise RunError(f"{profile.name}: {unknown_parameter_message(name, every, 'the parameter file')}")
    for notebook, params in profile.per_notebook.items():
        for name in params:
            if name not in accepted_by[notebook]:
                raise RunError(f"{profile.name}: "
                               f"{unknown_parameter_message(name, accepted_by[notebook], f'notebooks: {notebook}')}")


def _results_file(params: dict[str, Any], model: str) -> Path:
    return results_file(repo_path(params.get("RESULTS_DIR"), "results"), model)


def is_complete(state_file: Path, params: dict[str, Any], model: str, data: DataSummary | None) -> bool:
    """True when this notebook ran to its end with these parameters (its state file says so) and its
    results file records this very run, finished (`record.finished_run`): the same parameters, device
    type, data (`data`, what DATA_DIR holds now: its digest and counts) and network, the one these
    parameters build today (a factory default may have changed since)."""
    if data is None:  # no data there now: the notebook will say so
        return False
    try:
        state = json.loads(state_file.read_text())
        config, device, _ = checked_values(model, params)
    except (OSError, ValueError, WorkbookError):  # ConfigError is a ValueError: the notebook will say what is wrong
        return False
    identity = RunIdentity.of(config, device.type, data.digest, data.n_train, data.n_test)
    ran_to_its_end = state.get("params_hash") == short_hash(params)
    return ran_to_its_end and finished_run(_results_file(params, model), identity) is not None


def inspect_data(folder: Path) -> DataSummary | None:
    """What the data in `folder` are now, read from the loader's cache without decoding them
    (`summarize_cifar10`), or None when there are none yet (the notebook will download them) or they
    cannot be read (the notebook will say why)."""
    from cifar_helpers.data.cifar10 import summarize_cifar10
    from cifar_helpers.data.errors import CIFAR10Error

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notebook shows the data's warnings itself
        try:
            return summarize_cifar10(folder)
        except (CIFAR10Error, OSError):
            return None


def _checkpoint_folder(params: dict[str, Any], model: str) -> Path:
    return repo_path(params.get("CHECKPOINT_DIR"), "checkpoints") / model


def discard_checkpoints(params: dict[str, Any], model: str) -> None:
    """--force retrains from scratch: the model's checkpoints would otherwise resume, and its finished
    results file would be shown instead of trained again. That file is kept aside, hidden, as
    `.<model>.json.before-force`, so a retrain that fails at once loses nothing. The checkpoints of a
    run in progress (a notebook in JupyterLab) are never touched: that stops make run instead."""
    folder = _checkpoint_folder(params, model)
    with exclusive_folder(folder, model):
        for name in (LAST, BEST):
            (folder / name).unlink(missing_ok=True)
        results = _results_file(params, model)
        if results.exists():
            results.replace(results.with_name(f".{results.name}.before-force"))


def check_checkpoints_free(jobs: list[Job]) -> None:
    """--force: no training notebook's checkpoints may be in use by another run, checked before the
    first notebook runs (not after hours, when its turn comes)."""
    from cifar_helpers.engine.checkpoint import exclusive_folder

    for job in jobs:
        if job.trains:
            with exclusive_folder(_checkpoint_folder(job.params, job.trains), job.trains):
                pass


def make_fake_data(settings: dict[str, Any]) -> None:
    """Write the profile's generated data set if missing."""
    fake = settings.get("fake_data")
    if not fake:
        return
    from cifar_helpers.data.fake import write_fake_cifar10

    target = repo_path(fake["dir"], "data/fake")
    if not (target / "cifar-10-batches-py").is_dir():
        print(f"Writing generated CIFAR-10-format data to {target}")
        write_fake_cifar10(target, fake["n_train"], fake["n_test"], seed=fake.get("seed", 0), mark_generated=True)


SEED_FOLDER = "seed-{seed}"  # results, checkpoints and executed notebooks of the seeds after the first


def parse_seeds(value: Any) -> list[int] | None:
    """`--seeds 23,24,25` or `SEEDS: [23, 24, 25]`: distinct whole numbers >= 0, or None for one run."""
    if value is None or value == "":
        return None
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    try:
        seeds = [int(str(item).strip()) for item in items]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds) or \
            any(isinstance(item, (bool, float)) for item in items):
        raise RunError(f"SEEDS must be distinct whole numbers >= 0, such as 23,24,25; got {value!r}")
    return seeds


def seed_runs(given: dict[str, Any], declared: dict[str, Any], seeds: list[int] | None) -> list[tuple[dict, str]]:
    """One run per seed: (the parameters it changes, its executed-notebook sub-folder).

    The notebook's own SEED (23 unless the profile sets it) keeps the usual folders, so a multi-seed run
    never overwrites it; every other seed writes into seed-<n>/ sub-folders of RESULTS_DIR,
    CHECKPOINT_DIR and the executed notebooks."""
    if not seeds:
        return [({}, "")]
    primary = given.get("SEED", declared.get("SEED"))
    runs = []
    for seed in seeds:
        if seed == primary:
            runs.append(({"SEED": seed}, ""))
            continue
        folder = SEED_FOLDER.format(seed=seed)
        moved = {name: str(repo_path(given.get(name, declared.get(name)), default) / folder)
                 for name, default in OUTPUT_FOLDERS if name in declared and name != "FIGURES_DIR"}
        runs.append(({"SEED": seed, **moved}, folder))
    return runs


def _train_images(params: dict[str, Any], data_sizes: dict[Path, int]) -> int:
    """Training images per epoch: SUBSET, else the data in DATA_DIR when known, else all 50,000."""
    from cifar_helpers.workbook.estimate import FULL_TRAIN

    subset = params.get("SUBSET")
    if subset is not None:
        return subset if isinstance(subset, int) else subset[0]
    return data_sizes.get(data_dir(params.get("DATA_DIR")), FULL_TRAIN)


def check_values(jobs: list[Job]) -> None:
    """Each training notebook's values must work (EPOCHS a whole number, BATCH_SIZE >= 1, ...) and its
    DEVICE must exist here (a GPU profile on a machine without one), before any notebook runs and
    before any executed notebook is overwritten."""
    for job in jobs:
        if job.model or job.notebook == YOUR_MODEL_NOTEBOOK:
            try:
                checked_values(job.model, job.params) if job.model else your_model_values(job.params)
            except WorkbookError as exc:
                raise RunError(f"{job.notebook}: {exc}") from None


def check_data(jobs: list[Job], found: dict[Path, DataSummary | None]) -> None:
    """Each training notebook's DATA_DIR must exist when given, and its SUBSET fit the data found there."""
    for job in jobs:
        if not job.model:
            continue
        try:
            require_data_dir(job.params.get("DATA_DIR"))
            info = found.get(data_dir(job.params.get("DATA_DIR")))
            if info:
                check_subset_fits(job.params.get("SUBSET"), info.n_train, info.n_test)
        except WorkbookError as exc:
            raise RunError(f"{job.notebook}: {exc}") from None


def _trains_on_cpu(params: dict[str, Any]) -> bool:
    """Will this notebook train on the CPU? The device `select_device` picks, as the notebook will
    (`check_values` has made sure it exists)."""
    from cifar_helpers.engine.device import select_device

    return select_device(params.get("DEVICE", "auto")).type == "cpu"


def epochs_to_train(params: dict[str, Any], model: str, data: DataSummary | None) -> tuple[int, int]:
    """(epochs this notebook will train, epochs of this very run already done), as the engine will go on:
    from this run's checkpoint when there is one, else from nothing, unless its results file is finished or
    already at STOP_AFTER (then it is only shown)."""
    planned = params.get("EPOCHS") or TrainConfig.for_model(model).epochs
    last = planned if params.get("STOP_AFTER") is None else min(planned, params["STOP_AFTER"])
    if data is None:
        return last, 0
    config, device, _ = checked_values(model, params)
    identity = RunIdentity.of(config, device.type, data.digest, data.n_train, data.n_test)
    saved = _checkpoint_folder(params, model) / LAST
    if saved.is_file():
        try:
            state = checkpoint.load(saved)
        except checkpoint.CheckpointError:
            return last, 0  # the notebook says what is wrong with it
        if state.get("fingerprint") != identity.fingerprint:
            return last, 0  # moved aside: training starts afresh
        done = state["epoch"]
        return (0 if state["early_stopping"].get("stopped") else max(last - done, 0)), done
    record = recorded_run(_results_file(params, model), identity)
    if record is not None and (record["complete"] or len(record["history"]) >= last):
        return 0, len(record["history"])
    return last, 0  # a partial record without its checkpoint: training starts afresh


def check_cpu_cost(jobs: list[Job], assume_yes: bool, data_sizes: dict[Path, int] | None = None,
                   found: dict[Path, DataSummary | None] | None = None) -> None:
    """Refuse to start an hours-long CPU run silently: estimate it and ask for --yes.

    `data_sizes` maps data folders of known (small) size to their training images; `found` gives what
    each data folder holds, so that the epochs a resumed run has done are not counted again.
    """
    import torch

    from cifar_helpers.engine.device import SMALL_RUN_IMAGES
    from cifar_helpers.workbook.estimate import epoch_seconds
    from cifar_helpers.report.results import format_duration

    on_cpu = [job for job in jobs if job.model and _trains_on_cpu(job.params)]
    total, lines, measured = 0.0, [], {}
    for job in on_cpu:
        notebook, model, params = job.notebook, job.model, job.params
        cfg = TrainConfig.for_model(model, batch_size=params.get("BATCH_SIZE", 64))
        epochs, done = epochs_to_train(params, model, (found or {}).get(data_dir(params.get("DATA_DIR"))))
        n_train = _train_images(params, data_sizes or {})
        if epochs * n_train <= SMALL_RUN_IMAGES:
            continue  # a few epochs' worth of images take minutes, not hours (or a finished run: none)
        key = (model, cfg.batch_size, n_train)
        if key not in measured:  # several seeds of one notebook cost the same
            measured[key] = epoch_seconds(cfg, torch.device("cpu"), n_train)
        per_epoch = measured[key]
        total += per_epoch * epochs
        lines.append(f"  {notebook:<18} ~{format_duration(per_epoch)} per epoch x {epochs} epochs"
                     + (f" (after the {done} done)" if done else "") + f" = {format_duration(per_epoch * epochs)}")
    if total <= CPU_LIMIT_SECONDS:
        return
    report = "\n".join(lines)
    message = (f"No GPU: the report's full protocol would train on the CPU.\n"
               f"Estimated from a few timed training steps per model on this machine:\n{report}\n"
               f"  total               ~{format_duration(total)} (upper bound for the Custom ResNet, "
               "which stops early)\n"
               "Use `make smoke` (generated data, 2.5 minutes on 2 cores), `make run PARAMS=params/fast.yaml` on a GPU, "
               "or SUBSET for a quick look.")
    if not assume_yes:
        raise RunError(f"{message} To start the full run on the CPU anyway: `make run YES=1`.")
    print(f"{message} Starting anyway (YES=1).")


class _Tee:
    """A file-like object that writes to the notebook's log and to the console."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


_KERNELS: list = []  # the kernel managers of the notebooks this process runs


def _tracked_kernel_manager():
    """jupyter_client's kernel manager, remembering each kernel it starts (the kernel runs in a session
    of its own, so a terminal's Ctrl-C does not reach it unless make run passes it on), with encrypted
    connections where possible."""
    from jupyter_client import AsyncKernelManager

    from cifar_helpers.workbook.jupyter_setup import kernel_encryption

    class TrackedKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            if self.has_trait("transport_encryption"):  # an older jupyter_client has no such setting
                self.transport_encryption = kernel_encryption()
            _KERNELS.append(self)

        async def _async_interrupt_kernel(self):
            # jupyter_client interrupts a kernel before it shuts it down: an idle one then logs
            # "ERROR | KeyboardInterrupt caught in kernel" to make run's console, which reads as a failure.
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    return TrackedKernelManager


def _interrupt_kernels() -> None:
    """What JupyterLab's Kernel > Interrupt does: SIGINT to each kernel's process group."""
    for manager in _KERNELS:
        process = getattr(getattr(manager, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(os.getpgid(process.pid), signal.SIGINT)


@contextlib.contextmanager
def interrupts_go_to_the_kernel() -> Iterator[dict[str, bool]]:
    """The first SIGINT (Ctrl-C) interrupts the kernel, whose cell stops cleanly (training says how to
    resume), and is noted; a second one aborts at once. Yields the note: {"interrupted": True} once a
    SIGINT came."""
    note = {"interrupted": False}

    def on_sigint(signum, frame):
        if note["interrupted"]:
            raise KeyboardInterrupt
        note["interrupted"] = True
        _interrupt_kernels()

    if threading.current_thread() is not threading.main_thread():
        yield note  # signal handlers belong to the main thread
        return
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield note
    finally:
        signal.signal(signal.SIGINT, previous)


def _source(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def _running_cell(output: Path) -> str:
    """'cell 9 (`result = train_model(...)`)': the last cell papermill started in its output notebook."""
    try:
        cells = json.loads(output.read_text(encoding="utf-8"))["cells"]
        cell = [c for c in cells if (c.get("metadata", {}).get("papermill") or {}).get("start_time")][-1]
    except (OSError, ValueError, KeyError, IndexError):
        return "a cell"
    # papermill numbers the code cells it runs (empty ones are passed over); the dying one may have no number yet
    number = cell.get("execution_count") or sum(1 for c in cells[:cells.index(cell) + 1]
                                                if c["cell_type"] == "code" and _source(c).strip())
    lines = [line for line in _source(cell).splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return f"cell {number}" + (f" (`{lines[-1].strip()}`)" if lines else "")


def run_notebook(notebook: str, params: dict[str, Any], executed_dir: Path) -> None:
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    source = NOTEBOOK_DIR / f"{notebook}.ipynb"
    output = executed_dir / f"{notebook}.ipynb"
    log_path = executed_dir / f"{notebook}.log"
    try:
        with open(log_path, "w", encoding="utf-8") as log, interrupts_go_to_the_kernel() as note:
            try:
                papermill.execute_notebook(
                    str(source), str(output), parameters=params, kernel_name="python3",
                    progress_bar=False, stdout_file=_Tee(log, sys.stdout), stderr_file=_Tee(log, sys.stderr),
                    cwd=str(NOTEBOOK_DIR), kernel_manager_class=_tracked_kernel_manager(),
                )
            except PapermillExecutionError as exc:
                if note["interrupted"]:
                    raise KeyboardInterrupt from None
                raise RunError(
                    f"notebooks/{notebook}.ipynb failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
                    f"  log: {log_path}\n  notebook with outputs: {output}"
                ) from None
            except DeadKernelError:
                resume = ("Every finished epoch is in its checkpoint: run the same command again to resume"
                          if dict(NOTEBOOKS).get(notebook) else "Run the same command again to resume")
                raise RunError(
                    f"notebooks/{notebook}.ipynb: its kernel died in {_running_cell(output)}: it ran out of memory "
                    f"or was killed.\n  log: {log_path}\n  notebook with outputs: {output}\n  {resume}."
                ) from None
    finally:  # what was written so far, failed or not, names no machine's folder
        if output.exists():
            tidy_executed(output, log_path)
    if note["interrupted"]:  # the kernel was between cells, or never got the signal
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", help="YAML parameter file, e.g. params/smoke.yaml")
    parser.add_argument("--force", action="store_true",
                        help="retrain from scratch, even where results are complete or a checkpoint exists")
    parser.add_argument("--yes", action="store_true", help="start a long CPU run without asking")
    parser.add_argument("--only", help="comma-separated notebook names or prefixes (e.g. 01,06)")
    parser.add_argument("--executed-dir", default=None, help="where executed notebooks and logs go")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds: each training notebook runs once per seed (e.g. 23,24,25)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    os.environ.setdefault("CIFAR_PROGRESS", "lines")
    progress: dict[str, str] = {}
    try:
        jobs = run(args, progress)
    except WorkbookError as exc:  # RunError, a folder in use or not writable, a value that cannot work
        print(f"\nmake run stopped: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        where = f" during {progress['notebook']}" if "notebook" in progress else ""
        print(f"\nmake run interrupted{where}. Every finished epoch is in its checkpoint: run the same command "
              "again to resume from there.", file=sys.stderr)
        return 130
    print(f"All notebooks ran. {outputs_line(jobs)}")
    return 0


OUTPUT_FOLDERS = (("RESULTS_DIR", "results"), ("CHECKPOINT_DIR", "checkpoints"), ("FIGURES_DIR", "figures"))


def run(args: argparse.Namespace, progress: dict[str, str]) -> list[Job]:
    """`make run` itself, returning what it ran; `progress["notebook"]` names the notebook running now."""
    profile = load_profile(args.params)
    executed_dir = repo_path(args.executed_dir or profile.settings.get("executed_dir"), "executed")
    only = parse_only(args.only or profile.settings.get("only"), asked=profile.per_notebook)
    chosen = [(nb, model) for nb, model in NOTEBOOKS if nb in only]
    declared_by = {nb: declared_parameters(NOTEBOOK_DIR / f"{nb}.ipynb") for nb, _ in NOTEBOOKS}
    check_profile_names(profile, declared_by)
    seeds = parse_seeds(args.seeds if args.seeds is not None else profile.settings.get("seeds"))
    jobs = []
    for notebook, model in chosen:
        declared = declared_by[notebook]
        given = profile.for_notebook(notebook, set(declared))
        for seed, folder in (seed_runs(given, declared, seeds) if model else [(None, "")]):
            run_given = {**given, **seed} if seed else given
            jobs.append(Job(notebook, model, {**declared, **run_given}, run_given, folder))
    check_values(jobs)
    # Every output folder is checked before the first epoch, not found unwritable hours later.
    require_writable(executed_dir, "the executed-notebook folder (--executed-dir, or executed_dir under workbook:)")
    for job in jobs:
        for name, default in OUTPUT_FOLDERS:
            if name in job.params:
                require_writable(repo_path(job.params[name], default), name)
    if args.force:
        check_checkpoints_free(jobs)
    with exclusive(executed_dir, "the executed notebooks", "give this run another --executed-dir"):
        print(f"Running {len(jobs)} notebook{'s' * (len(jobs) != 1)} with {profile.name} "
              f"into {shown_path(executed_dir)}")
        make_fake_data(profile.settings)
        found = {folder: inspect_data(folder) for folder in {data_dir(job.params.get("DATA_DIR"))
                                                              for job in jobs if job.model}}
        check_data(jobs, found)
        data_sizes = {folder: info.n_train for folder, info in found.items() if info}
        check_cpu_cost(jobs, args.yes, data_sizes, found)
        for index, job in enumerate(jobs, 1):
            notebook, model = job.notebook, job.model
            notebook_dir = executed_dir / job.seed_folder
            # The notebook ran to its end with these parameters (written after it did).
            state_file = notebook_dir / ".state" / f"{notebook}.json"
            prefix = f"[{index}/{len(jobs)}] {notebook}" + (f" (seed {job.params['SEED']})" if len(seeds or ()) > 1 and model else "")
            data = found.get(data_dir(job.params.get("DATA_DIR")))
            if model and not args.force and is_complete(state_file, job.params, model, data):
                print(f"{prefix}: skipped, results complete for these parameters (FORCE=1 re-runs it)")
                continue
            if args.force and job.trains:
                discard_checkpoints(job.params, job.trains)
            print(f"{prefix}: running (log: {shown_path(notebook_dir / (notebook + '.log'))})", flush=True)
            progress["notebook"] = notebook
            started = time.perf_counter()
            notebook_dir.mkdir(parents=True, exist_ok=True)
            run_notebook(notebook, job.given, notebook_dir)
            if model:
                atomic_write_json(state_file, {"params_hash": short_hash(job.params), "params": job.params})
            print(f"{prefix}: done in {time.perf_counter() - started:.0f} s")
    return jobs


def outputs_line(jobs: Iterable[Job]) -> str:
    """Where the notebooks put their figures and results (Table 1 among them), as their parameters say."""
    where = {}
    for name, default in OUTPUT_FOLDERS:
        folders = sorted({shown_path(repo_path(job.params[name], default)) for job in jobs if name in job.params})
        where[name] = ", ".join(f"{folder}/" for folder in folders) or f"{default}/"
    return (f"Figures are in {where['FIGURES_DIR']}, results and Table 1 in {where['RESULTS_DIR']} "
            "(see 06_analysis).")


if __name__ == "__main__":
    sys.exit(main())
