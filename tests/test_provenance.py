"""The code a run was made with: the commit, and whether the code differed from it."""

import subprocess

import pytest

from cifar_helpers.core import paths
from cifar_helpers.engine.record import code_revision, describe


def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    (tmp_path / "cifar_helpers").mkdir()
    (tmp_path / "cifar_helpers" / "models.py").write_text("WIDTHS = (32, 64, 128)\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "resnet.json").write_text("{}\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path)
    return tmp_path


def head(repo):
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()


def test_a_clean_tree_names_its_commit(repo):
    assert code_revision() == {"git_commit": head(repo), "uncommitted_code": False}
    assert describe(code_revision()) == head(repo)


def test_results_a_run_rewrites_are_not_a_code_change(repo):
    (repo / "results" / "resnet.json").write_text('{"epoch": 23}\n')
    (repo / "notes.txt").write_text("untracked\n")
    assert code_revision()["uncommitted_code"] is False


def test_a_changed_model_default_is_recorded_as_uncommitted_code(repo):
    (repo / "cifar_helpers" / "models.py").write_text("WIDTHS = (16, 32, 64)\n")
    revision = code_revision()
    assert revision == {"git_commit": head(repo), "uncommitted_code": True}
    assert describe(revision) == f"{head(repo)} (with uncommitted code changes)"


def test_a_copy_without_git_takes_the_commit_it_was_given(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above it either
    monkeypatch.delenv("GIT_COMMIT", raising=False)
    assert code_revision() == {"git_commit": None, "uncommitted_code": None}
    assert describe(code_revision()) == "unknown"
    monkeypatch.setenv("GIT_COMMIT", "abc123")
    assert code_revision() == {"git_commit": "abc123", "uncommitted_code": None}
