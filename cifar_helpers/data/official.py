"""The official CIFAR-10 release: its classes, archive, batch files and checksums; downloading the archive,
extracting its batches folder, and reading the pickled batches (nothing but numpy arrays unpickled).

`read_batches(folder)` gives the four arrays, a description and the caveats (checksums that differ from the
release); data the workbook generated itself (`data/fake.py`) name their writer in batches.meta instead.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

import numpy as np

from cifar_helpers.core import paths
from cifar_helpers.core.files import held_while_written
from cifar_helpers.data.errors import CorruptDatasetError, DataFolderNotWritableError, is_dir

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCHES_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META_FILE = "batches.meta"
# Per-file md5 of the official release, as torchvision lists them.
OFFICIAL_FILE_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
# batches.meta of data the workbook generated itself (`make smoke`) names its writer under this key: its
# checksums and counts are its own, and loading it warns about neither.
GENERATED_BY_KEY = "generated_by"
GENERATED_SOURCE = "generated data"
OFFICIAL_TRAIN_PER_CLASS = 5000
OFFICIAL_TEST_PER_CLASS = 1000
BATCH_FILES = TRAIN_BATCHES + (TEST_BATCH, META_FILE)

DOWNLOAD_TIMEOUT = 30  # seconds without a byte from the server before a download gives up
_DOWNLOAD_CHUNK = 1 << 20


def batches_dir(root: Path) -> Path | None:
    """The folder holding the batch files (`root/cifar-10-batches-py` or `root` itself), or None."""
    for folder in (root / BATCHES_DIR, root):
        if is_dir(folder) and any((folder / n).exists() for n in BATCH_FILES):
            missing = [n for n in BATCH_FILES if not (folder / n).is_file()]
            if missing:
                raise CorruptDatasetError(
                    f"{folder} lacks {', '.join(missing)}. Delete the folder and load again to "
                    f"re-extract it from {ARCHIVE_NAME} (or re-download it), or put the missing files back.")
            return folder
    return None


def leftovers(root: Path) -> list[Path]:
    """The temporary folders of downloads and extractions into `root` (a killed one's stay behind)."""
    return [*root.glob(".download-*"), *root.glob(".extract-*")]


def download_archive(root: Path, url: str | None = None, timeout: float | None = None) -> Path:
    """Download the official archive into `root`; a partial download never lands there.

    Prints progress about every tenth of the file. A server that sends
    nothing for `timeout` seconds (connecting included) ends the download
    with an error. Leftovers of earlier downloads that were killed are removed
    by `load_cifar10` first; this one's temporary folder is removed however it ends.
    """
    import urllib.error
    import urllib.request

    url = url or OFFICIAL_URL
    timeout = DOWNLOAD_TIMEOUT if timeout is None else timeout
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=root) as tmp, held_while_written(tmp):
        part = Path(tmp) / ARCHIVE_NAME
        print(f"Downloading {url} into {root} (gives up after {timeout:g} s without data) ...", flush=True)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0)
                done, shown = 0, 0
                while chunk := response.read(_DOWNLOAD_CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if total and done * 10 // total > shown:
                        shown = done * 10 // total
                        print(f"  {done / 1e6:.1f} of {total / 1e6:.1f} MB ({100 * done // total}%)", flush=True)
        except (TimeoutError, urllib.error.URLError) as err:  # connect or a read without data
            if isinstance(err, TimeoutError) or isinstance(getattr(err, "reason", None), TimeoutError):
                raise TimeoutError(f"no data from the server for {timeout:g} s") from err
            raise
        if total and done != total:
            raise OSError(f"the download ended after {done:,} of {total:,} bytes")
        os.replace(part, root / ARCHIVE_NAME)
    return root / ARCHIVE_NAME


def extract_archive(archive: Path, root: Path) -> Path:
    """Extract the batches folder into a temporary folder, then rename it into place."""
    target = root / BATCHES_DIR
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    except OSError as err:
        raise DataFolderNotWritableError(
            f"{archive} is extracted next to itself, but {root} cannot be written ({err.strerror or err}). "
            f"Make the folder writable, or extract the archive yourself into a writable folder "
            f"(tar -xzf {archive} -C <folder>) and set DATA_DIR (or CIFAR10_DIR) to that folder.") from None
    try:
        with held_while_written(tmp):
            _extract_batches(archive, tmp)
            try:
                os.rename(tmp / BATCHES_DIR, target)
            except OSError:
                if not target.is_dir():  # else another process extracted it first
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _extract_batches(archive: Path, folder: Path) -> None:
    """Extract the archive's batches folder, and nothing else, into `folder`."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers()
                       if m.name.split("/")[0] == BATCHES_DIR and ".." not in m.name.split("/")
                       and (m.isfile() or m.isdir())]
            # The "data" filter (Python >= 3.10.12 / 3.11.4) also drops odd permissions.
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(folder, members=members, **safe)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise CorruptDatasetError(
            f"{archive} is corrupt or truncated ({err}). Delete it and load again to "
            f"re-download it, or replace it with a good copy of {OFFICIAL_URL}.") from None
    if not (folder / BATCHES_DIR).is_dir():
        raise CorruptDatasetError(
            f"{archive} holds no {BATCHES_DIR}/ folder, so it is not the official CIFAR-10 "
            f"archive. Replace it with {OFFICIAL_URL}, or delete it.")


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches and nothing else: only numpy's array globals are allowed."""

    _reconstruct = np.ndarray.__reduce__(np.empty(0))[0]
    _allowed = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # bytes in Python 3 protocol-2 pickles
    }

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"unexpected global {module}.{name}") from None


def _unpickle(file: Path) -> dict:
    try:
        with open(file, "rb") as handle:
            obj = _BatchUnpickler(handle, encoding="bytes").load()
        if not isinstance(obj, dict):
            raise ValueError(f"holds a {type(obj).__name__}, not a dict")
    except Exception as err:  # unpickling raises nearly anything on damaged input
        raise CorruptDatasetError(
            f"Cannot read {file}: {type(err).__name__}: {err}. It is corrupt or truncated: delete "
            f"{file.parent} and load again to re-extract it from {ARCHIVE_NAME} (or re-download it), "
            f"or replace the file with a good copy.") from None
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_batch(file: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(file)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise CorruptDatasetError(
            f"{file}: 'data' must be a uint8 array of N x 3072 (32x32x3 images), got "
            f"{type(data).__name__} {shape} {getattr(data, 'dtype', '')}. Replace the file with a good copy.")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        labels = None
    if labels is None or labels.shape != (len(data),):
        raise CorruptDatasetError(f"{file}: 'labels' must be {len(data)} integers, one per image. "
                                  f"Replace the file with a good copy.")
    # Official layout: each row is channel-planar RGB (1024 R, 1024 G, 1024 B), row-major.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def read_batches(folder: Path):
    """The four arrays (NHWC uint8 images, int64 labels), a description and the caveats of the batches in `folder`."""
    meta = _unpickle(folder / META_FILE)
    names = tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in meta.get("label_names", ()))
    if names != CIFAR10_CLASSES:
        raise CorruptDatasetError(
            f"{folder / META_FILE}: label_names are {names}, not CIFAR-10's {CIFAR10_CLASSES}. "
            f"Replace the file with a good copy.")
    train = [_read_batch(folder / n) for n in TRAIN_BATCHES]
    test_x, test_y = _read_batch(folder / TEST_BATCH)
    arrays = (np.ascontiguousarray(np.concatenate([x for x, _ in train])),
              np.concatenate([y for _, y in train]),
              np.ascontiguousarray(test_x), test_y)
    writer = meta.get(GENERATED_BY_KEY)
    if writer is not None:
        writer = writer.decode("latin1") if isinstance(writer, bytes) else str(writer)
        return arrays, f"{GENERATED_SOURCE} ({writer}) at {paths.shown_path(folder)}", []
    differ = [n for n in BATCH_FILES if _md5(folder / n) != OFFICIAL_FILE_MD5[n]]
    description = f"official python batches at {paths.shown_path(folder)}"
    caveats = []
    if differ:
        description += "; checksums differ from the official release"
        caveats.append(f"checksums differ from the official release ({', '.join(differ)})")
    return arrays, description, caveats


def _md5(file: Path) -> str:
    digest = hashlib.md5()
    with open(file, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
