"""Which code a run was made with: the git commit, and whether the code differed from it.

Only the code counts as a change (the package, the notebooks, the benchmarks): a run rewrites its own
tracked results files as it goes, which says nothing about the code that trained it.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from cifar_helpers.core import paths

CODE_PATHS = ("cifar_helpers", "notebooks", "benchmarks")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=paths.REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def code_revision() -> dict[str, Any]:
    """{"git_commit": HEAD, "uncommitted_code": bool}; None for what cannot be told.

    A copy without .git (the GPU machine's) takes the commit from $GIT_COMMIT, if the caller set it."""
    head = _git("rev-parse", "HEAD")
    if head is None:
        return {"git_commit": os.environ.get("GIT_COMMIT") or None, "uncommitted_code": None}
    changes = _git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    return {"git_commit": head.strip() or None, "uncommitted_code": None if changes is None else bool(changes.strip())}


def describe(revision: dict[str, Any]) -> str:
    """One line for a report: "<commit>", "<commit> (with uncommitted code changes)" or "unknown"."""
    commit = revision.get("git_commit") or "unknown"
    return commit + (" (with uncommitted code changes)" if revision.get("uncommitted_code") else "")
