"""Shared fixtures: small generated data sets in the official on-disk format."""

from __future__ import annotations

import os
import warnings

import pytest

from cifar_helpers.data.cifar10 import load_cifar10
from cifar_helpers.data.errors import CIFAR10Warning
from cifar_helpers.data.fake import write_fake_cifar10

# Batch-run output (one line per epoch) for every engine call in the tests.
os.environ.setdefault("CIFAR_PROGRESS", "lines")


@pytest.fixture(scope="session")
def fake_data_dir(tmp_path_factory):
    """400 train / 200 test learnable images in cifar-10-batches-py format."""
    folder = tmp_path_factory.mktemp("fake-cifar10")
    write_fake_cifar10(folder, 400, 200, seed=0)
    return folder


@pytest.fixture(scope="session")
def fake_data(fake_data_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CIFAR10Warning)  # checksums and counts differ by design
        return load_cifar10(fake_data_dir, download=False)


def pytest_collection_modifyitems(items):
    """nbval checks the executed notebooks in the workbook's run order, not by file name: 06 shows what 07
    trained (make run runs 07 before it), so under nbval too 07 must run first."""
    from pathlib import Path

    from cifar_helpers.models.specs import NOTEBOOKS

    order = {notebook: index for index, (notebook, _) in enumerate(NOTEBOOKS)}
    slots = [i for i, item in enumerate(items) if Path(str(item.fspath)).stem in order
             and str(item.fspath).endswith(".ipynb")]
    folders: dict[str, int] = {}  # each folder keeps its place: executed/, then executed/smoke-seeds/, ...
    for i in slots:
        folders.setdefault(str(Path(str(items[i].fspath)).parent), len(folders))
    cells = sorted((items[i] for i in slots),  # stable: a notebook's cells keep their order
                   key=lambda item: (folders[str(Path(str(item.fspath)).parent)], order[Path(str(item.fspath)).stem]))
    for i, item in zip(slots, cells):
        items[i] = item
