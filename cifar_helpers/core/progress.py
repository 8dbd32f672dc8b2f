"""Progress output: one line per epoch in batch runs, a bar when interactive.

papermill, nbval and scripts get one line per epoch and nothing per batch, so
no output flood can trip papermill's IOPub limits. In JupyterLab a tqdm bar
per epoch shows the batches as they go. Other long work (the first decoding of
an image folder) reports the same way: a line per tenth done, or a bar.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")

ENV_VAR = "CIFAR_PROGRESS"  # "lines" or "bar" overrides the detection


def _parent_is_batch_runner() -> bool:
    """True when the kernel was started by papermill/nbval/nbconvert (Linux /proc)."""
    try:
        cmdline = open(f"/proc/{os.getppid()}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return any(name in cmdline for name in ("papermill", "pytest", "nbconvert", "nbclient", "run_all"))


def progress_mode() -> str:
    """'bar' in an interactive Jupyter kernel, else 'lines'."""
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced in ("lines", "bar"):
        return forced
    in_kernel = "ipykernel" in sys.modules and type(sys.stdout).__name__ == "OutStream"
    return "bar" if in_kernel and not _parent_is_batch_runner() else "lines"


def batch_progress(batches: Iterable[T], total: int, desc: str, mode: str) -> Iterator[T]:
    if mode != "bar":
        yield from batches
        return
    from tqdm.std import tqdm  # plain text bar: needs no ipywidgets

    with tqdm(batches, total=total, desc=desc, leave=False, mininterval=0.5, file=sys.stdout) as bar:
        yield from bar


@contextlib.contextmanager
def counted(total: int, unit: str, mode: str | None = None) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`, which reports `n` more of `total` `unit`s done: a line at every tenth, or a bar."""
    if (mode or progress_mode()) == "bar":
        from tqdm.std import tqdm

        with tqdm(total=total, unit=unit, mininterval=0.5, file=sys.stdout) as bar:
            yield bar.update
        return
    done = shown = 0

    def advance(n: int) -> None:
        nonlocal done, shown
        done += n
        if total and done * 10 // total > shown:
            shown = done * 10 // total
            print(f"  {done:,} of {total:,} {unit}s ({100 * done // total}%)", flush=True)

    yield advance


def format_epoch(row: dict, epochs: int) -> str:
    width = len(str(epochs))
    return (f"epoch {row['epoch']:>{width}}/{epochs}"
            f"  train loss {row['train_loss']:.4f} acc {100 * row['train_acc']:6.2f}%"
            f"  test loss {row['test_loss']:.4f} acc {100 * row['test_acc']:6.2f}%"
            f"  lr {row['lr']:.3g}  {row['train_seconds']:.1f}s train + {row['eval_seconds']:.1f}s eval")


def format_session(session: dict) -> str:
    """The heading of a span of epochs in a replayed course: which setup trained them."""
    first, last = session["first_epoch"], session["last_epoch"]
    span = f"epoch {first}" if first == last else f"epochs {first}-{last}"
    commit = (session.get("git_commit") or "unknown commit")[:7]
    changed = " with uncommitted code changes" if session.get("uncommitted_code") else ""
    if session.get("unrecorded"):  # a results file from before sessions were recorded
        return (f"{span}: trained before sessions were recorded; the record was written on "
                f"{session.get('device_name') or 'an unrecorded device'}, commit {commit}{changed}")
    processor = f", {session['processor']}" if session.get("processor") else ""
    return (f"{span}: trained on {session.get('device_name') or 'an unrecorded device'}{processor}, "
            f"commit {commit}{changed}")


def format_course(history: list[dict], sessions: list[dict], epochs: int) -> list[str]:
    """The lines a run printed for its earlier epochs, each span headed by the setup that trained it.

    A resumed or finished run shows them first, so its notebook shows the whole course, not only the
    epochs trained since the last checkpoint."""
    lines = []
    for session in sessions:
        lines.append(format_session(session))
        lines.extend(format_epoch(row, epochs) for row in history
                     if session["first_epoch"] <= row["epoch"] <= session["last_epoch"])
    return lines
