"""Set up Jupyter for the workbook in this Python environment: `python -m cifar_helpers.jupyter_setup`.

- Registers this environment's Python as the kernel `python3`, with the
  display name the notebooks' metadata carries, so JupyterLab opens them
  without rewriting their metadata (and asking to save an untouched notebook).
- Turns off JupyterLab's news pop-up, which would ask on first start whether
  to fetch news from the internet.

`make install` and the Docker image run it; both write into `sys.prefix` only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

KERNEL_NAME = "python3"
KERNEL_DISPLAY_NAME = "Python 3 (ipykernel)"  # what every notebook's kernelspec says
# What the kernel reports and JupyterLab writes into a notebook it opens: stored as is, so an untouched
# notebook stays unchanged. The version is that of the Python the workbook is built and tested with.
LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
    "version": "3.11.7",
}
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


def register_kernel() -> None:
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL_NAME,
                    "--display-name", KERNEL_DISPLAY_NAME], check=True, stdout=subprocess.DEVNULL)


def write_lab_settings(prefix: Path = Path(sys.prefix)) -> Path:
    """JupyterLab reads default overrides from <prefix>/share/jupyter/lab/settings/overrides.json."""
    path = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**current, **LAB_SETTINGS}, indent=2) + "\n")
    return path


def main() -> int:
    register_kernel()
    write_lab_settings()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
