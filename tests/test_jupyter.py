"""JupyterLab and the notebooks: where the setup writes, and notebook files that no Python changes."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cifar_helpers.workbook import jupyter_setup
from cifar_helpers.workbook.notebook_files import (
    KERNEL_DISPLAY_NAME, KERNEL_NAME, KERNELSPEC, LANGUAGE_INFO, PYTHON_VERSION, WorkbookContentsManager,
    strip_python_version_from_file,
)
from cifar_helpers.core.paths import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
OTHER_PYTHON = "3.12.3"  # what a kernel of another Python reports (the GPU machine's)


def test_notebooks_store_the_registered_kernel_and_no_python_version():
    """JupyterLab writes the kernel's spec and language_info into an opened notebook; a version stored
    in the file would differ under every other Python."""
    for path in NOTEBOOKS:
        metadata = json.loads(path.read_text())["metadata"]
        assert metadata["kernelspec"] == KERNELSPEC, path.name
        assert metadata["language_info"] == LANGUAGE_INFO and "version" not in LANGUAGE_INFO, path.name
    installed = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    if installed.is_file():  # `make install` ran in this environment
        assert json.loads(installed.read_text())["display_name"] == KERNEL_DISPLAY_NAME


@pytest.fixture
def contents_manager(tmp_path, monkeypatch):
    """The workbook's contents manager on a copy of notebooks/, as JupyterLab's server runs it."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))  # the notary's signatures
    root = tmp_path / "root"
    shutil.copytree(REPO_ROOT / "notebooks", root)
    return WorkbookContentsManager(root_dir=str(root)), root


@pytest.mark.parametrize("kernel_python", [PYTHON_VERSION, OTHER_PYTHON])
def test_a_notebook_opened_and_saved_in_jupyterlab_is_unchanged_under_any_python(contents_manager,
                                                                                 kernel_python):
    manager, root = contents_manager
    for path in NOTEBOOKS:
        model = asyncio.run(manager.get(path.name))
        # What JupyterLab compares with the kernel's language_info: equal under this Python, so it
        # finds nothing to change and the notebook does not show as modified.
        assert model["content"]["metadata"]["language_info"] == {**LANGUAGE_INFO, "version": PYTHON_VERSION}
        content = json.loads(json.dumps(model["content"]))  # as the browser sends it back
        content["metadata"]["language_info"]["version"] = kernel_python  # JupyterLab writes the kernel's
        asyncio.run(manager.save({"type": "notebook", "format": "json", "content": content}, path.name))
        assert (root / path.name).read_bytes() == path.read_bytes(), path.name


def test_strip_python_version_from_file_rewrites_only_that_line(tmp_path):
    """For notebooks papermill wrote (the reference runs): no final newline, as papermill writes them."""
    committed = NOTEBOOKS[0].read_text()
    with_version = committed.replace('"pygments_lexer": "ipython3"\n',
                                     f'"pygments_lexer": "ipython3",\n   "version": "{OTHER_PYTHON}"\n')
    assert with_version != committed
    path = tmp_path / "executed.ipynb"
    path.write_text(with_version.rstrip("\n"))
    assert strip_python_version_from_file(path) is True
    assert path.read_text() == committed.rstrip("\n")
    assert strip_python_version_from_file(path) is False
    assert path.read_text() == committed.rstrip("\n")


def test_lab_settings_merge_into_what_jupyterlab_reads(tmp_path, monkeypatch):
    from jupyterlab_server.settings_utils import _get_overrides  # what JupyterLab's settings API calls

    path = tmp_path / "labconfig" / "default_setting_overrides.json"
    path.parent.mkdir()
    path.write_text('{"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}')
    assert jupyter_setup.write_lab_settings(tmp_path) == path
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(tmp_path))
    overrides, error = _get_overrides(str(tmp_path / "no-app-dir"))
    assert not error
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert overrides["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}  # kept


def test_server_settings_merge_into_what_the_server_loads(tmp_path, monkeypatch):
    import zmq
    from jupyter_server.serverapp import ServerApp

    path = tmp_path / "jupyter_server_config.json"
    path.write_text('{"ServerApp": {"port": 9999}}')
    assert jupyter_setup.write_server_settings(tmp_path) == path
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(tmp_path))
    app = ServerApp()
    app.load_config_file()
    assert app.config.ServerApp.port == 9999  # kept
    assert app.config.ServerApp.contents_manager_class == "cifar_helpers.workbook.notebook_files.WorkbookContentsManager"
    if zmq.has("curve"):
        assert app.config.MappingKernelManager.transport_encryption == "auto"


def test_setup_on_debians_python_leaves_jupyterlabs_application_folder_alone(tmp_path):
    """Debian's python3 has sys.prefix /usr while pip puts JupyterLab under /usr/local: a folder
    <sys.prefix>/share/jupyter/lab made by the setup became JupyterLab's application folder, without
    its pages (HTTP 500 in the Docker image). Here sys.prefix is a fresh folder, as /usr is there."""
    prefix = tmp_path / "usr"
    script = textwrap.dedent(f"""
        import json, sys
        sys.prefix = {str(prefix)!r}
        from jupyterlab.commands import get_app_dir
        from jupyterlab_server.settings_utils import _get_overrides
        before = get_app_dir()
        from cifar_helpers.workbook import jupyter_setup
        jupyter_setup.write_lab_settings()
        jupyter_setup.write_server_settings()
        overrides, _ = _get_overrides(get_app_dir() + "/settings")
        print(json.dumps([before, get_app_dir(), overrides]))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    before, after, overrides = json.loads(result.stdout.splitlines()[-1])
    assert after == before and not (prefix / "share").exists()
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert (prefix / "etc" / "jupyter" / "jupyter_server_config.json").is_file()


def lab_check(tmp_path, config_dir: Path | None) -> tuple[int, str, str]:
    """Start this environment's JupyterLab on a copy of notebooks/ (with the Jupyter config folder
    `config_dir` added to its search path) and run docker/lab_check.py against it: (exit status, the
    check's output, the server's log)."""
    import os
    import secrets
    import socket
    import time
    import urllib.request

    root = tmp_path / "root"
    shutil.copytree(REPO_ROOT / "notebooks", root / "notebooks")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "run"),
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    if config_dir is not None:
        env["JUPYTER_CONFIG_PATH"] = str(config_dir)
    log = tmp_path / "lab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        check = subprocess.run([sys.executable, str(REPO_ROOT / "docker" / "lab_check.py"), base, token],
                               capture_output=True, text=True, timeout=300, env=env)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return check.returncode, check.stdout + check.stderr, log.read_text()


@pytest.mark.slow
def test_jupyterlab_with_the_workbooks_config_passes_the_lab_check(tmp_path):
    """The page, the settings, an encrypted kernel that runs a cell, and a notebook opened and saved
    unchanged, in a real JupyterLab (`make docker-test` runs the same check in the image)."""
    config = tmp_path / "config"
    jupyter_setup.write_lab_settings(config)
    jupyter_setup.write_server_settings(config)
    status, output, log = lab_check(tmp_path, config)
    assert status == 0, f"{output}\n{log[-3000:]}"
    assert "opens unmodified and saves unchanged" in output
    assert "without encryption" not in log  # ipykernel's warning for a kernel on plain TCP


def test_kernels_the_runner_starts_are_encrypted(tmp_path):
    """ipykernel warns "Kernel is running over TCP without encryption" on every start without CurveZMQ
    keys: six times per `make smoke`."""
    import zmq

    from cifar_helpers.workbook.run_all import _tracked_kernel_manager

    if not zmq.has("curve"):
        pytest.skip("this pyzmq has no CurveZMQ")
    manager = _tracked_kernel_manager()(kernel_name="python3")
    stderr = tmp_path / "kernel.stderr"

    async def start_and_stop():
        with open(stderr, "w") as out:
            await manager.start_kernel(stderr=out)
        client = manager.client()
        client.start_channels()
        await client.wait_for_ready(timeout=120)
        client.stop_channels()
        await manager.shutdown_kernel()

    asyncio.run(start_and_stop())
    assert manager.curve_publickey is not None
    assert "without encryption" not in stderr.read_text()
