"""Shared library for the cifar-workbook notebooks.

The notebooks stay thin: they set parameters, call into these modules and
show what comes back. Everything worth testing lives here.
"""

__version__ = "0.1.0"
