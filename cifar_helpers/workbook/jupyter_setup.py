"""Set up Jupyter for the workbook in this Python environment: `python -m cifar_helpers.workbook.jupyter_setup`.

- Registers this environment's Python as the kernel `python3`, with the
  display name the notebooks' metadata carries, so JupyterLab opens them
  without rewriting their metadata (and asking to save an untouched notebook).
- Writes into this environment's Jupyter config folder (`<sys.prefix>/etc/jupyter`,
  the "config" entry of `jupyter --paths` that belongs to this environment), which
  every Jupyter server started from this environment reads:
  - `labconfig/default_setting_overrides.json`: JupyterLab's news pop-up off, which
    would ask on first start whether to fetch news from the internet;
  - `jupyter_server_config.json`: the contents manager that keeps the Python version
    out of saved notebooks (`notebook_files`), and kernels started with encrypted
    connections (CurveZMQ), where pyzmq supports it.

Nothing goes under `<sys.prefix>/share/jupyter/lab`: where that folder exists
JupyterLab takes it for its application folder, and for Debian's Python
(sys.prefix /usr, while pip installs JupyterLab under /usr/local) it then
finds no pages and answers HTTP 500.

`make install` and the Docker image run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cifar_helpers.core.files import atomic_write_text
from cifar_helpers.workbook.notebook_files import KERNEL_DISPLAY_NAME, KERNEL_NAME, WorkbookContentsManager

LAB_SETTINGS = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}
CONTENTS_MANAGER = f"{WorkbookContentsManager.__module__}.{WorkbookContentsManager.__qualname__}"


def env_config_dir() -> Path:
    """This environment's Jupyter config folder, as jupyter_core finds it (`<sys.prefix>/etc/jupyter`)."""
    from jupyter_core.paths import ENV_CONFIG_PATH

    return Path(ENV_CONFIG_PATH[0])


def kernel_encryption() -> str:
    """jupyter_client's `transport_encryption` for the kernels the workbook starts: "auto" (CurveZMQ keys
    for kernels that declare support, as ipykernel does; it warns on every start without them) where
    pyzmq has CurveZMQ, else "disabled" (jupyter_client refuses "auto" there)."""
    import zmq

    return "auto" if zmq.has("curve") else "disabled"


def server_settings() -> dict:
    """The Jupyter server settings the workbook needs, by configurable class."""
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

    settings = {"ServerApp": {"contents_manager_class": CONTENTS_MANAGER}}
    if MappingKernelManager.class_traits().get("transport_encryption"):  # an older server has no such setting
        settings["MappingKernelManager"] = {"transport_encryption": kernel_encryption()}
    return settings


def register_kernel() -> None:
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL_NAME,
                    "--display-name", KERNEL_DISPLAY_NAME], check=True, stdout=subprocess.DEVNULL)


def _merge_json(path: Path, settings: dict) -> Path:
    """Add `settings` (a section per key) to the JSON object in `path`, keeping the file's other entries."""
    current = json.loads(path.read_text()) if path.is_file() else {}
    for section, values in settings.items():
        for key, value in values.items():
            before = current.get(section, {}).get(key, value)
            if before != value:
                print(f"{path}: {section}.{key} was {before!r}, now {value!r} (the workbook needs it)")
        current[section] = {**current.get(section, {}), **values}
    atomic_write_text(path, json.dumps(current, indent=2) + "\n")
    return path


def write_lab_settings(config_dir: Path | None = None) -> Path:
    """JupyterLab's default-setting overrides, read from `labconfig/` of every Jupyter config folder."""
    return _merge_json((config_dir or env_config_dir()) / "labconfig" / "default_setting_overrides.json",
                       LAB_SETTINGS)


def write_server_settings(config_dir: Path | None = None) -> Path:
    """The Jupyter server's settings (`server_settings`), read from every Jupyter config folder."""
    return _merge_json((config_dir or env_config_dir()) / "jupyter_server_config.json", server_settings())


def main() -> int:
    register_kernel()
    write_lab_settings()
    write_server_settings()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
