"""The workbook's own errors and warnings, and how a notebook shows them.

Every error the workbook raises on purpose derives from `WorkbookError`: its
message already says what happened and what to do, so in a Jupyter kernel it
is shown as that message alone, without a traceback (papermill and nbval
still see the cell fail, with the error's name and message). Warnings that
derive from `WorkbookWarning` are shown as one line, without the file and
source line Python's default adds. Other exceptions keep their full
traceback: for a bug it helps.
"""

from __future__ import annotations

import sys
import textwrap
import warnings


class WorkbookError(Exception):
    """An error whose message says all a reader needs."""


class WorkbookWarning(UserWarning):
    """A warning the workbook gives on purpose: one line, shown as it is."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped by the user (Kernel > Interrupt, Ctrl-C); the message says how to resume."""


_SHOWN_AS_MESSAGES = (WorkbookError, TrainingInterrupted)


WRAP = 100  # characters: a notebook's output area wraps longer lines anywhere, mid-word included


def wrap(text: str) -> str:
    """`text` with its lines broken between words at WRAP characters."""
    return "\n".join(textwrap.fill(line, WRAP, break_long_words=False, break_on_hyphens=False) or line
                     for line in str(text).split("\n"))


def _show_message(shell, etype, value, tb, tb_offset=None):
    """IPython custom-exception handler: the error's name and message, nothing else."""
    stb = [wrap(f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}")]
    shell._showtraceback(etype, value, stb)  # the kernel's error message: a frontend shows it, papermill sees it
    return stb


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    if isinstance(category, type) and issubclass(category, WorkbookWarning):
        print(wrap(f"Warning: {message}"), file=sys.stderr if file is None else file)
    else:
        _default(message, category, filename, lineno, file, line)


def install_notebook_display() -> bool:
    """In an IPython kernel, show workbook errors and warnings as messages; True if installed."""
    if "IPython" not in sys.modules:
        return False
    shell = sys.modules["IPython"].get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc(_SHOWN_AS_MESSAGES, _show_message)
    warnings.showwarning = _show_warning
    return True
