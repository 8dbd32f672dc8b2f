"""Checkpoints under `checkpoints/<model>/`: best weights and the last full state.

`last.pt` holds everything a resumed run needs to continue exactly where an
uninterrupted one would be: model, optimizer, scheduler, epoch, early-stopping
state, history and every RNG state. `best.pt` holds the weights of the epoch
with the lowest test loss. Both are written atomically, and loaded with
explicit `weights_only=True` and `map_location`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cifar_helpers.core.files import atomic_write
from cifar_helpers.core.errors import WorkbookError
from cifar_helpers.core.files import exclusive

LAST = "last.pt"
BEST = "best.pt"


class CheckpointError(WorkbookError, RuntimeError):
    """A checkpoint that cannot be used; the message says what to do."""


def exclusive_folder(folder: Path, model: str):
    """Hold `model`'s checkpoint folder for the block: one run (or deletion) at a time, else FolderInUseError."""
    return exclusive(folder, f"the checkpoints of {model}", "set another CHECKPOINT_DIR")


def save(obj: Any, path: Path) -> Path:
    try:
        return atomic_write(path, lambda tmp: torch.save(obj, tmp))
    except (OSError, RuntimeError) as exc:  # a full disk shows up as torch's "unexpected pos" RuntimeError
        raise CheckpointError(
            f"could not write the checkpoint {path} ({exc}). Is the disk full or the folder read-only? "
            "Free some space, or set CHECKPOINT_DIR to another folder, and run again: the checkpoint "
            "written before this one is intact, and the run resumes from it.") from None


def load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, foreign pickle, ...
        raise CheckpointError(
            f"cannot read checkpoint {path}: {exc}. Delete it to start this model's training afresh."
        ) from exc


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))


def archive_stale(path: Path, fingerprint: str) -> Path:
    """Move a checkpoint made with other parameters aside, so nothing is lost."""
    target = path.with_name(f"{path.stem}.stale-{fingerprint}{path.suffix}")
    path.replace(target)
    return target
