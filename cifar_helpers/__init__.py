"""Shared library for the cifar-workbook notebooks.

The notebooks stay thin: they set parameters, call into these modules and
show what comes back. Everything worth testing lives here. Imported in a
Jupyter kernel, it shows the workbook's own errors and warnings as short
messages (see `errors`).
"""

from cifar_helpers.core.errors import install_notebook_display as _install_notebook_display

__version__ = "0.1.0"

_install_notebook_display()
