"""CIFAR-10 from whatever copy a machine has: load, check, cache, subset, describe.

`load_cifar10(data_dir)` looks in `data_dir` for, in this order:

1. ``cifar-10-batches-py/``: the official python batches (``data_dir`` may
   also be that folder itself);
2. ``cifar-10-python.tar.gz``: the official archive, extracted on first use;
3. ``train/<class>/*.png|jpg|jpeg`` and ``test/<class>/*``: an image-folder
   tree such as the JPEG copy described in docs/protocol.md, with ``data_dir`` its root.

With none there and ``download=True`` it downloads the official archive.
The decoded arrays are cached in ``data_dir/.cache/cifar10-<key>/`` (.npy files), so
later loads need not decode them again. The cache key is a hash of the source
files' contents (every byte, with each file's name and class folder), so any
change to the images or labels misses the cache and is decoded afresh; the
data's digest, which results and checkpoints record, is then that of the new
arrays. So every load reads every byte (in threads; the README gives the times).

Every load checks the structure: 32x32 RGB uint8 images (image files in other
modes are converted to RGB), labels 0..9 and all ten classes in both splits;
a failure raises `CorruptDatasetError`, as do image files of a type the loader
does not read (.webp, .bmp, ...), which would otherwise be left out unseen.
Counts other than the official 50,000/10,000 (5,000/1,000 per class), and
batch files whose md5 differs from the official release, still load: each
load then emits exactly one `CIFAR10Warning`, one line that says it all.
Images are NHWC uint8 tensors; labels are int64.
"""

from __future__ import annotations

import codecs
import concurrent.futures
import dataclasses
import errno
import functools
import gzip
import hashlib
import json
import os
import pickle
import shutil
import stat
import tarfile
import tempfile
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from cifar_helpers.core import paths
from cifar_helpers.core.errors import WorkbookError, WorkbookWarning
from cifar_helpers.core.hashing import content_digest, files_digest, short_hash
from cifar_helpers.core.files import held_while_written, remove_abandoned
from cifar_helpers.core.progress import counted

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
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Image files the loader does not read: a class folder holding any stops the load instead of losing them.
OTHER_IMAGE_SUFFIXES = (".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pnm", ".pbm", ".tga",
                        ".ico", ".heic", ".heif", ".avif", ".jp2", ".jxl")
CACHE_DIR = ".cache"
_CACHE_FORMAT = 4  # bump when the cache's content or layout changes (2: the content digest; 3: a key of the bytes;
#   4: the description names no folder, so a copy read from another checkout names its own)
_FOLDER_MARK = "<data folder>"  # stands for the folder in a cached description


class CIFAR10Error(WorkbookError, RuntimeError):
    """Base class of this module's errors."""


class DatasetNotFoundError(CIFAR10Error, FileNotFoundError):
    """No CIFAR-10 data in the folder, and none could be downloaded."""


class CorruptDatasetError(CIFAR10Error, ValueError):
    """A file is unreadable, or the data break CIFAR-10's structure."""


class DataFolderNotWritableError(CIFAR10Error, PermissionError):
    """The data folder must be written to (to extract the archive) and cannot be."""


class CIFAR10Warning(WorkbookWarning):
    """The data load but differ from the official release (one line per load)."""


@dataclasses.dataclass(eq=False)
class CIFAR10:
    """The CIFAR-10 arrays: images uint8 N x 32 x 32 x 3 (NHWC), labels int64."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...] = CIFAR10_CLASSES
    source: str = ""
    # A hash of the images and labels themselves: a run made from other data never counts as the same run.
    digest: str = ""

    @functools.cached_property
    def normalization(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """(mean, std) per channel of the training images, in [0, 1] units."""
        return channel_stats(self.train_images)

    def __repr__(self) -> str:
        return (f"CIFAR10(train={len(self.train_labels)}, test={len(self.test_labels)}, "
                f"source={self.source!r})")


# --------------------------------------------------------------------------- loading


def load_cifar10(data_dir: str | os.PathLike | None = None, download: bool = True) -> CIFAR10:
    """Load CIFAR-10 from `data_dir` (see the module docstring for the layouts).

    `data_dir` None means `paths.default_data_dir()` (`$CIFAR10_DIR`, else
    `<repo>/data`); a relative path starts at the repository root.

    Raises `DatasetNotFoundError` when no layout is there and no download is
    possible, `CorruptDatasetError` for unreadable files or broken structure.
    Emits one `CIFAR10Warning` line when the counts differ from the official
    ones or the batch files' md5 differ from the official release.
    """
    root = paths.data_dir(data_dir)
    _remove_leftovers(root)
    source = _find_source(root, download)
    cache = root / CACHE_DIR / f"cifar10-{source.key}"

    cached = _read_cache(cache, source)
    if cached is not None:
        arrays, description, caveats, digest = cached
    else:
        arrays, description, caveats = source.decode()
        _validate(arrays, source.where)
        digest = content_digest(arrays)
        description = _without_folder(description, source.path)  # a first load reads as a cached one
        _write_cache(cache, source.key, arrays, description, caveats, digest)
    description = description.replace(_FOLDER_MARK, paths.shown_path(source.path))

    if not description.startswith(GENERATED_SOURCE):
        caveats = caveats + _count_caveats(arrays)
    if caveats:
        warnings.warn(f"CIFAR-10 in {source.where}: " + "; ".join(caveats) + ".",
                      CIFAR10Warning, stacklevel=2)
    train_x, train_y, test_x, test_y = (torch.from_numpy(a) for a in arrays)
    return CIFAR10(train_x, train_y, test_x, test_y, CIFAR10_CLASSES, description, digest)


@dataclasses.dataclass(frozen=True)
class DataSummary:
    """What a load of a data folder gives, less its images: the content digest that results and
    checkpoints record, and the number of training and test images."""

    digest: str
    n_train: int
    n_test: int


def summarize_cifar10(data_dir: str | os.PathLike | None = None) -> DataSummary:
    """The digest and counts `load_cifar10(data_dir, download=False)` gives, without decoding or reading
    the images when the loader's cache holds them: its record and the arrays' headers are read instead.

    The cache is found by its key, which reads every source file's bytes, so a changed file is never
    taken for the cached one. Data never loaded before are loaded (decoded once, into the cache that the
    next load reads). Raises, and warns, as `load_cifar10` does."""
    root = paths.data_dir(data_dir)
    source = _find_source(root, download=False)
    summary = _cached_summary(root / CACHE_DIR / f"cifar10-{source.key}", source.key)
    if summary is None:
        data = load_cifar10(root, download=False)
        summary = DataSummary(data.digest, len(data.train_labels), len(data.test_labels))
    return summary


def _cached_summary(folder: Path, key: str) -> DataSummary | None:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != _CACHE_FORMAT or meta.get("key") != key:
            return None
        # mmap reads an .npy file's header only
        n_train, n_test = (len(np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False))
                           for name in ("train_labels", "test_labels"))
        return DataSummary(str(meta["digest"]), n_train, n_test)
    except (OSError, ValueError, KeyError, TypeError):  # none, or unreadable: a load rebuilds it
        return None


def _without_folder(description: str, folder: Path) -> str:
    """`description` with its folder as a mark: the same data read from another checkout names its own folder."""
    for shown in (paths.shown_path(folder), str(folder)):
        description = description.replace(f" at {shown}", f" at {_FOLDER_MARK}", 1)
    return description


@dataclasses.dataclass
class _Source:
    layout: str  # "batches" or "images"
    path: Path
    key: str
    # Image folders: (split index, label, class folder, sorted file names) per class folder.
    image_folders: list[tuple[int, int, str, list[str]]] = dataclasses.field(default_factory=list)

    @property
    def where(self) -> str:
        return str(self.path)

    def decode(self):
        return _read_batches(self.path) if self.layout == "batches" else _read_image_folder(self)


def _find_source(root: Path, download: bool) -> _Source:
    _is_dir(root)  # a link loop is named, not taken for a missing folder
    batches = _batches_dir(root)
    if batches is None and (root / ARCHIVE_NAME).is_file():
        batches = _extract_archive(root / ARCHIVE_NAME, root)
    if batches is not None:
        groups = [(name, str(batches), [name]) for name in _BATCH_FILES]
        return _Source("batches", batches, _content_key("batches", groups))
    if _is_dir(root / "train") or _is_dir(root / "test"):
        return _scan_image_folder(root)
    if not download:
        raise DatasetNotFoundError(_not_found_message(root, "download=False"))
    try:
        _download_archive(root)
    except Exception as err:  # no network, refused, disk full, ...: all mean "no data"
        # The message holds the cause: its traceback (the network's, first) would only hide it.
        raise DatasetNotFoundError(
            _not_found_message(root, f"the download from {OFFICIAL_URL} failed: {err}")) from None
    return _find_source(root, download=False)


def _is_dir(path: Path) -> bool:
    """`path.is_dir()`, but a link loop or an unreadable path raises CorruptDatasetError, naming it."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as err:
        raise _unreadable(err) from None


def _unreadable(err: OSError) -> CorruptDatasetError:
    """The one-line error for a data file or folder that cannot be opened (`err.filename` its full path)."""
    path = str(err.filename)
    if err.errno == errno.ELOOP:
        return CorruptDatasetError(
            f"{path} is a symbolic link loop: it leads back to itself ({path} -> {_link_target(path)}). "
            "Point the link at the real file or folder, or delete it.")
    if err.errno == errno.ENOENT and os.path.islink(path):
        return CorruptDatasetError(
            f"{path} is a broken link: what it points to does not exist. Restore the file, or delete the link.")
    return CorruptDatasetError(
        f"Cannot read {path} ({err.strerror or err}). Check that it exists and that you may read it "
        "(its owner and permissions), or replace it.")


def _link_target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _content_key(layout: str, groups) -> str:
    """The cache key: a hash of the source files' bytes (`hashing.files_digest` groups), never of
    their names, sizes or times alone, which a swap or an edit can leave equal."""
    try:
        contents = files_digest(groups)
    except OSError as err:
        raise _unreadable(err) from None
    return short_hash([_CACHE_FORMAT, layout, contents])


def _remove_leftovers(root: Path) -> None:
    """The half-written downloads, extractions and caches of loads that were killed; a live load's stay."""
    remove_abandoned([*root.glob(".download-*"), *root.glob(".extract-*"),
                      *(root / CACHE_DIR).glob(".cifar10-*")])


_BATCH_FILES = TRAIN_BATCHES + (TEST_BATCH, META_FILE)


def _batches_dir(root: Path) -> Path | None:
    for folder in (root / BATCHES_DIR, root):
        if _is_dir(folder) and any((folder / n).exists() for n in _BATCH_FILES):
            missing = [n for n in _BATCH_FILES if not (folder / n).is_file()]
            if missing:
                raise CorruptDatasetError(
                    f"{folder} lacks {', '.join(missing)}. Delete the folder and load again to "
                    f"re-extract it from {ARCHIVE_NAME} (or re-download it), or put the missing files back.")
            return folder
    return None


def _not_found_message(root: Path, why: str) -> str:
    state = "" if root.is_dir() else " (the folder does not exist)"
    return (
        f"No CIFAR-10 data in {root}{state}, and {why}.\n"
        f"Accepted layouts there, searched in this order:\n"
        f"  1. {BATCHES_DIR}/ with data_batch_1..5, test_batch, batches.meta (the official python batches)\n"
        f"  2. {ARCHIVE_NAME} (the official archive; extracted on first use)\n"
        f"  3. train/<class>/*.png|jpg|jpeg and test/<class>/* (an image-folder tree)\n"
        f"The official archive is {OFFICIAL_URL} (md5 {OFFICIAL_MD5}).\n"
        f"Offline: download it on another machine and put {ARCHIVE_NAME} in {root}, "
        f"or set CIFAR10_DIR (or pass data_dir) to a folder holding one of these layouts."
    )


DOWNLOAD_TIMEOUT = 30  # seconds without a byte from the server before a download gives up
_DOWNLOAD_CHUNK = 1 << 20


def _download_archive(root: Path, url: str | None = None, timeout: float | None = None) -> Path:
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


def _extract_archive(archive: Path, root: Path) -> Path:
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


# --------------------------------------------------------------------------- official batches


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


def _read_batches(folder: Path):
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
    differ = [n for n in _BATCH_FILES if _md5(folder / n) != OFFICIAL_FILE_MD5[n]]
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


# --------------------------------------------------------------------------- image folders


def _scan_image_folder(root: Path) -> _Source:
    folders: list[tuple[int, int, str, list[str]]] = []
    groups: list[tuple[str, str, list[str]]] = []  # what the cache key reads: (split/class, folder, files)
    unread: list[str] = []
    for split_index, split in enumerate(("train", "test")):
        split_dir = root / split
        if not _is_dir(split_dir):
            raise CorruptDatasetError(
                f"{root} looks like an image-folder tree but has no {split}/ folder. "
                f"Add {split}/<class>/ images, or remove the incomplete tree.")
        for name in _subfolder_names(split_dir):
            if name not in CIFAR10_CLASSES:
                raise CorruptDatasetError(
                    f"{split_dir / name}: '{name}' is not a CIFAR-10 class; class folders must be "
                    f"named {', '.join(CIFAR10_CLASSES)}. Rename or remove it.")
            class_dir = str(split_dir / name)
            try:
                listed = os.listdir(class_dir)
            except OSError as err:
                raise _unreadable(err) from None
            # Hidden files are never images: .DS_Store, and macOS's "._name.jpg" resource forks.
            listed = [f for f in listed if not f.startswith(".")]
            files = sorted(f for f in listed if f.lower().endswith(IMAGE_SUFFIXES))
            unread += sorted(os.path.join(class_dir, f) for f in listed if f.lower().endswith(OTHER_IMAGE_SUFFIXES))
            folders.append((split_index, CIFAR10_CLASSES.index(name), class_dir, files))
            groups.append((f"{split}/{name}", class_dir, files))
    if unread:
        more = len(unread) - 1
        more = f", and {more:,} more such file{'s' if more > 1 else ''} in {root}" if more else ""
        raise CorruptDatasetError(
            f"{unread[0]} is a {os.path.splitext(unread[0])[1].lower()} image{more}: the loader reads "
            f"{', '.join(IMAGE_SUFFIXES)} only, and leaving them out would change the data set unseen. "
            "Convert them to PNG (lossless), or move them out of the class folders.")
    return _Source("images", root, _content_key("images", groups), folders)


def _subfolder_names(folder: Path) -> list[str]:
    try:
        entries = [Path(entry.path) for entry in os.scandir(folder)]
    except OSError as err:
        raise _unreadable(err) from None
    return sorted(path.name for path in entries if _is_dir(path))


def _decode_image(file: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(file) as img:
            size = img.size
            pixels = np.asarray(img.convert("RGB")) if size == (32, 32) else None
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ... on damaged files
        raise CorruptDatasetError(
            f"Cannot decode {file}: {type(err).__name__}: {err}. Replace it with a good copy, "
            f"or delete it.") from None
    if pixels is None:
        raise CorruptDatasetError(
            f"{file} is {size[0]}x{size[1]} pixels; CIFAR-10 images are 32x32. "
            f"Replace it with a 32x32 copy, or delete it.")
    return pixels


def _read_image_folder(source: _Source):
    files = [os.path.join(folder, name) for _, _, folder, names in source.image_folders for name in names]
    images = np.empty((len(files), 32, 32, 3), dtype=np.uint8)

    def decode_range(start: int, stop: int) -> None:
        for i in range(start, stop):
            images[i] = _decode_image(files[i])

    # The JPEG copy's first load takes most of a minute: say what happens, and how far it got.
    print(f"Decoding the {len(files):,} images in {source.path} (once: the arrays are cached for later loads)",
          flush=True)
    started = time.perf_counter()
    # PIL releases the GIL while decoding, so threads help; chunks keep the overhead low.
    step = 2000
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool, \
            counted(len(files), "image") as advance:
        jobs = [pool.submit(decode_range, s, min(s + step, len(files))) for s in range(0, len(files), step)]
        try:
            for start, job in zip(range(0, len(files), step), jobs):
                job.result()
                advance(min(step, len(files) - start))
        except BaseException:
            for job in jobs:
                job.cancel()
            raise
    print(f"Decoded {len(files):,} images in {time.perf_counter() - started:.0f} s.", flush=True)

    # The scan lists train folders first, then test ones.
    labels = np.concatenate([np.full(len(names), label, dtype=np.int64)
                             for _, label, _, names in source.image_folders] or [np.empty(0, np.int64)])
    n_train = sum(len(names) for split, _, _, names in source.image_folders if split == 0)
    arrays = (images[:n_train], labels[:n_train], images[n_train:], labels[n_train:])
    suffixes = {os.path.splitext(f)[1].lower() for f in files}
    kinds = "/".join(k for k, s in (("PNG", {".png"}), ("JPEG", {".jpg", ".jpeg"})) if suffixes & s) or "empty"
    lossy = " (lossy copy)" if suffixes & {".jpg", ".jpeg"} else ""
    description = f"{kinds} image folder{lossy} at {paths.shown_path(source.path)} (train/<class>/, test/<class>/)"
    return arrays, description, []


# --------------------------------------------------------------------------- checks


def _validate(arrays, where: str) -> None:
    """Raise CorruptDatasetError unless the arrays have CIFAR-10's structure (counts aside)."""
    for split, images, labels in (("train", arrays[0], arrays[1]), ("test", arrays[2], arrays[3])):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
            raise CorruptDatasetError(
                f"{where}: {split} images are {images.dtype} {tuple(images.shape)}, not uint8 N x 32 x 32 x 3.")
        if labels.ndim != 1 or len(labels) != len(images):
            raise CorruptDatasetError(
                f"{where}: {len(images)} {split} images but {len(labels)} labels.")
        bad = labels[(labels < 0) | (labels > 9)]
        if len(bad):
            raise CorruptDatasetError(
                f"{where}: {len(bad)} {split} labels are outside 0..9 (e.g. {int(bad[0])}). "
                f"Replace the data with a good copy.")
        counts = np.bincount(labels, minlength=10)
        missing = [CIFAR10_CLASSES[k] for k in range(10) if counts[k] == 0]
        if missing:
            raise CorruptDatasetError(
                f"{where}: the {split} set has no images of class {', '.join(missing)}; "
                f"every CIFAR-10 class must appear in train and in test.")


def _count_caveats(arrays) -> list[str]:
    train = np.bincount(arrays[1], minlength=10)
    test = np.bincount(arrays[3], minlength=10)
    if (train == OFFICIAL_TRAIN_PER_CLASS).all() and (test == OFFICIAL_TEST_PER_CLASS).all():
        return []

    def per_class(c: np.ndarray) -> str:
        return f"{c.min():,}" if c.min() == c.max() else f"{c.min():,}-{c.max():,}"

    return [f"{train.sum():,} training and {test.sum():,} test images ({per_class(train)} and "
            f"{per_class(test)} per class), not the official 50,000 and 10,000 (5,000 and 1,000 per class)"]


# --------------------------------------------------------------------------- cache

_ARRAY_NAMES = ("train_images", "train_labels", "test_images", "test_labels")


def _read_cache(folder: Path, source: _Source):
    """The cached arrays, or None when there are none or they are unreadable (then warn)."""
    if not folder.is_dir():
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != _CACHE_FORMAT or meta.get("key") != source.key:
            raise ValueError("it belongs to another source or format")
        arrays = tuple(np.load(folder / f"{name}.npy", allow_pickle=False) for name in _ARRAY_NAMES)
        _validate(arrays, str(folder))
        return arrays, str(meta["source"]), [str(c) for c in meta["caveats"]], str(meta["digest"])
    except (OSError, ValueError, KeyError, TypeError, EOFError) as err:
        warnings.warn(f"Ignoring the unreadable cache {folder} ({type(err).__name__}: {err}); "
                      f"rebuilding it from {source.where}.", CIFAR10Warning, stacklevel=3)
        return None


def _write_cache(folder: Path, key: str, arrays, description: str, caveats: list[str], digest: str) -> None:
    """Write the .npy files into a temporary folder, then rename it into place."""
    meta = {"format": _CACHE_FORMAT, "key": key, "source": description, "caveats": caveats, "digest": digest}
    tmp = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        with held_while_written(tmp):  # a later load removes it only if this one was killed
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the data folder may be shared
            for name, array in zip(_ARRAY_NAMES, arrays):
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            for file in tmp.iterdir():
                with open(file, "rb+") as handle:
                    os.fsync(handle.fileno())
            shutil.rmtree(folder, ignore_errors=True)  # an unreadable cache of the same key
            try:
                os.rename(tmp, folder)
            except OSError:
                if not (folder / "meta.json").is_file():  # else another process just wrote it
                    raise
        for stale in folder.parent.glob("cifar10-*"):  # one source per data folder: drop old caches
            if stale != folder:
                shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    except OSError as err:  # a read-only or full data folder must not stop a load
        warnings.warn(f"Could not write the cache {folder} ({err}); later loads will decode the "
                      f"data again.", CIFAR10Warning, stacklevel=3)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- using the data


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and population std of uint8 N x 32 x 32 x 3 images, in [0, 1] units.

    Sums run in int64 over chunks of images, so they are exact and need no
    float copy of the whole set.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"channel_stats needs uint8 N x H x W x 3 images, got {images.dtype} {tuple(images.shape)}")
    if len(images) == 0:
        raise ValueError("channel_stats needs at least one image")
    total = torch.zeros(3, dtype=torch.int64)
    squares = torch.zeros(3, dtype=torch.int64)
    for chunk in images.split(1024):
        values = chunk.reshape(-1, 3).to(torch.int64)
        total += values.sum(0)
        squares += (values * values).sum(0)
    n = images.numel() // 3
    means, stds = [], []
    for s, ss in zip(total.tolist(), squares.tolist()):  # Python ints: exact until the division
        means.append(s / n / 255)
        stds.append(((ss * n - s * s) / (n * n)) ** 0.5 / 255)
    return tuple(means), tuple(stds)


def subset(data: CIFAR10, n_train: int, n_test: int, seed: int = 23) -> CIFAR10:
    """Keep `n_train` training and `n_test` test images, chosen at random with `seed`.

    The choice is class-balanced (classes take turns, in a seeded random
    order) and the kept images stay in their original order.
    """
    picks = []
    for name, n, labels in (("n_train", n_train, data.train_labels), ("n_test", n_test, data.test_labels)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"subset: {name} must be a positive int, got {n!r}")
        if n > len(labels):
            raise ValueError(f"subset: {name}={n} but the data have only {len(labels)} images")
        picks.append(_balanced_pick(labels, int(n), seed))
    train, test = picks
    return CIFAR10(data.train_images[train], data.train_labels[train],
                   data.test_images[test], data.test_labels[test], data.classes,
                   f"{len(train)} train / {len(test)} test subset (seed {seed}) of {data.source}")


def _balanced_pick(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    one_hot = torch.nn.functional.one_hot(labels[order], num_classes=10)
    rank = (one_hot.cumsum(0) * one_hot).sum(1) - 1  # position of each image within its class
    turn = rank * len(labels) + torch.arange(len(labels))  # round-robin over classes
    return order[turn.argsort()[:n]].sort().values


def counts(data: CIFAR10):
    """A pandas DataFrame of images per class: index the class names, columns train and test."""
    import pandas as pd

    return pd.DataFrame(
        {"train": torch.bincount(data.train_labels, minlength=len(data.classes)).tolist(),
         "test": torch.bincount(data.test_labels, minlength=len(data.classes)).tolist()},
        index=pd.Index(data.classes, name="class"))
