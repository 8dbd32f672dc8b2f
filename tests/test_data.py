"""The CIFAR-10 loader (cifar_helpers.data: cifar10, official, image_folders, cache, checks, errors): every accepted
layout, the cache, the checks and their messages."""

from __future__ import annotations

import os
import pickle
import shutil
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cifar_helpers.core import paths
from cifar_helpers.data import cache as data_cache
from cifar_helpers.data import checks, cifar10, image_folders, official
from cifar_helpers.data.cifar10 import DataSummary, channel_stats, counts, load_cifar10, subset, summarize_cifar10
from cifar_helpers.data.errors import (
    CIFAR10Error, CIFAR10Warning, CorruptDatasetError, DataFolderNotWritableError, DatasetNotFoundError,
)
from cifar_helpers.data.official import ARCHIVE_NAME, BATCHES_DIR, CIFAR10_CLASSES, OFFICIAL_MD5, OFFICIAL_URL
from cifar_helpers.data.fake import write_fake_cifar10
from cifar_helpers.core.hashing import content_digest

N_TRAIN, N_TEST = 200, 50


@pytest.fixture(scope="module")
def pristine_fake(tmp_path_factory) -> Path:
    """A fake data set written once per module; tests copy it before touching it."""
    root = tmp_path_factory.mktemp("pristine")
    write_fake_cifar10(root, N_TRAIN, N_TEST, seed=0)
    return root


@pytest.fixture
def fake_dir(pristine_fake, tmp_path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(pristine_fake, root)
    return root


@pytest.fixture
def fake_archive(pristine_fake, tmp_path) -> Path:
    archive = tmp_path / "archive-src" / ARCHIVE_NAME
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(pristine_fake / BATCHES_DIR, arcname=BATCHES_DIR)
    return archive


def load_recording(*args, **kwargs):
    """Load and return (data, the CIFAR10Warning messages it emitted)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_cifar10(*args, **kwargs)
    return data, [str(w.message) for w in caught if issubclass(w.category, CIFAR10Warning)]


def read_official_style(file: Path) -> dict:
    with open(file, "rb") as handle:
        return pickle.load(handle, encoding="latin1")


def expected_arrays(batches: Path):
    """Decode the batches by hand, as the CIFAR-10 web page describes the format."""
    train = [read_official_style(batches / f"data_batch_{i}") for i in range(1, 6)]
    test = read_official_style(batches / "test_batch")

    def images(batch_list):
        rows = np.concatenate([b["data"] for b in batch_list])
        return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)

    labels = lambda batch_list: np.concatenate([b["labels"] for b in batch_list])  # noqa: E731
    return images(train), labels(train), images([test]), labels([test])


def assert_matches(data, arrays):
    for tensor, array in zip((data.train_images, data.train_labels, data.test_images, data.test_labels), arrays):
        assert np.array_equal(tensor.numpy(), array)


def write_python3_batch(file: Path, data, labels) -> None:
    """A batch pickled by Python 3 (bytes keys); the loader accepts it like an official one."""
    with open(file, "wb") as handle:
        pickle.dump({b"batch_label": b"x", b"labels": list(labels), b"data": data, b"filenames": []}, handle)


def write_image_tree(root: Path, suffix: str, per_class=(4, 2), skip_class=None, seed=0):
    """train/<class>/ and test/<class>/ of random smooth 32x32 images; returns the arrays written."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, 32)[:, None, None]  # smooth, so that JPEG keeps it close
    out = {}
    for split, n in zip(("train", "test"), per_class):
        images, labels = [], []
        for label, name in enumerate(CIFAR10_CLASSES):
            if name == skip_class:
                continue
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                low, high = rng.integers(0, 256, (2, 1, 1, 3))
                pixels = np.broadcast_to(low + (high - low) * ramp, (32, 32, 3)).round().astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}{suffix}", quality=95)
                images.append(pixels)
                labels.append(label)
        out[split] = (np.stack(images), np.array(labels))
    return out


# --------------------------------------------------------------------------- fake batches


def test_fake_batches_read_like_the_official_ones(pristine_fake):
    batches = pristine_fake / BATCHES_DIR
    assert sorted(p.name for p in batches.iterdir()) == sorted(
        [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"])
    for encoding, text in (("bytes", bytes), ("latin1", str)):
        with open(batches / "data_batch_1", "rb") as handle:
            batch = pickle.load(handle, encoding=encoding)
        key = lambda name: name.encode() if text is bytes else name  # noqa: E731
        assert set(batch) == {key("batch_label"), key("labels"), key("data"), key("filenames")}
        assert isinstance(batch[key("batch_label")], text)
        assert all(isinstance(name, text) for name in batch[key("filenames")])
        assert batch[key("data")].dtype == np.uint8 and batch[key("data")].shape == (N_TRAIN // 5, 3072)
        assert all(isinstance(y, int) for y in batch[key("labels")])
        with open(batches / "batches.meta", "rb") as handle:
            meta = pickle.load(handle, encoding=encoding)
        assert set(meta) == {key("label_names"), key("num_cases_per_batch"), key("num_vis")}
        assert [text(n) if text is str else n.decode() for n in meta[key("label_names")]] == list(CIFAR10_CLASSES)
        assert meta[key("num_vis")] == 3072
    with open(batches / "test_batch", "rb") as handle:
        test = pickle.load(handle, encoding="bytes")
    assert sorted(set(test[b"labels"])) == list(range(10)) and len(test[b"labels"]) == N_TEST


@pytest.mark.parametrize("n_train, n_test", [(9, 10), (10, 5), (10.0, 10), (True, 10)])
def test_fake_rejects_too_few_or_non_int_counts(tmp_path, n_train, n_test):
    with pytest.raises(ValueError, match="must be an int >= 10"):
        write_fake_cifar10(tmp_path, n_train, n_test)


def test_fake_data_is_learnable_by_a_tiny_cnn(tmp_path):
    write_fake_cifar10(tmp_path, 400, 100, seed=1)
    data, _ = load_recording(tmp_path, download=False)
    mean, std = (torch.tensor(v)[:, None, None] for v in data.normalization)
    prep = lambda x: (x.permute(0, 3, 1, 2).float() / 255 - mean) / std  # noqa: E731
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(4),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(16, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = prep(data.train_images), data.train_labels
    for _ in range(2):
        for idx in torch.randperm(len(y)).split(32):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = (model(prep(data.test_images)).argmax(1) == data.test_labels).float().mean().item()
    assert accuracy > 0.4  # chance is 0.1


# --------------------------------------------------------------------------- official layouts


def test_loads_official_folder(fake_dir):
    data, caveats = load_recording(fake_dir, download=False)
    assert data.train_images.shape == (N_TRAIN, 32, 32, 3) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (N_TEST, 32, 32, 3) and data.test_images.dtype == torch.uint8
    assert data.train_labels.dtype == torch.int64 and data.test_labels.dtype == torch.int64
    assert data.classes == CIFAR10_CLASSES == ("airplane", "automobile", "bird", "cat", "deer",
                                               "dog", "frog", "horse", "ship", "truck")
    assert_matches(data, expected_arrays(fake_dir / BATCHES_DIR))
    assert "official python batches" in data.source and str(fake_dir / BATCHES_DIR) in data.source
    assert "\n" not in data.source
    # One warning line says both how the counts and the checksums differ.
    assert len(caveats) == 1 and "\n" not in caveats[0]
    assert "200 training and 50 test images (20 and 5 per class)" in caveats[0]
    assert "50,000 and 10,000" in caveats[0]
    assert "checksums differ from the official release" in caveats[0]


def test_data_dir_may_be_the_batches_folder_itself(fake_dir):
    data, _ = load_recording(fake_dir / BATCHES_DIR, download=False)
    assert_matches(data, expected_arrays(fake_dir / BATCHES_DIR))


def test_matching_checksums_give_no_checksum_warning(fake_dir, monkeypatch):
    batches = fake_dir / BATCHES_DIR
    monkeypatch.setattr(official, "OFFICIAL_FILE_MD5", {p.name: official._md5(p) for p in batches.iterdir()})
    data, caveats = load_recording(fake_dir, download=False)
    assert "differ" not in data.source
    assert len(caveats) == 1 and "checksums differ" not in caveats[0] and "200 training" in caveats[0]


def test_official_counts_give_no_count_warning():
    labels = lambda n: np.repeat(np.arange(10), n)  # noqa: E731
    assert checks.count_caveats((None, labels(5000), None, labels(1000))) == []
    assert checks.count_caveats((None, labels(4999), None, labels(1000))) != []


def test_archive_is_extracted_on_first_use(fake_archive, pristine_fake, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    shutil.copy(fake_archive, root)
    data, caveats = load_recording(root, download=False)
    assert_matches(data, expected_arrays(pristine_fake / BATCHES_DIR))
    assert (root / BATCHES_DIR / "test_batch").is_file()
    assert not list(root.glob(".extract-*"))  # the temporary folder is gone
    assert len(caveats) == 1 and "checksums differ" in caveats[0]


def test_truncated_archive_names_the_file_and_leaves_nothing_behind(fake_archive, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    blob = fake_archive.read_bytes()
    (root / ARCHIVE_NAME).write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CorruptDatasetError) as error:
        load_cifar10(root, download=False)
    message = str(error.value)
    assert str(root / ARCHIVE_NAME) in message and "truncated" in message
    assert "Delete it and load again" in message and OFFICIAL_URL in message
    assert sorted(p.name for p in root.iterdir()) == [ARCHIVE_NAME]


def test_archive_without_batches_folder_is_rejected(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (tmp_path / "other.txt").write_text("hello")
    with tarfile.open(root / ARCHIVE_NAME, "w:gz") as tar:
        tar.add(tmp_path / "other.txt", arcname="other.txt")
    with pytest.raises(CorruptDatasetError, match="holds no cifar-10-batches-py/"):
        load_cifar10(root, download=False)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_batch_file_names_the_file(fake_dir, damage):
    file = fake_dir / BATCHES_DIR / "data_batch_3"
    blob = file.read_bytes()
    file.write_bytes(blob[:100] if damage == "truncate" else b"not a pickle at all" * 10)
    with pytest.raises(CorruptDatasetError) as error:
        load_cifar10(fake_dir, download=False)
    message = str(error.value)
    assert f"Cannot read {file}" in message
    assert "delete" in message and "re-extract" in message and "replace the file" in message
    assert error.value.__cause__ is None and error.value.__suppress_context__  # the message names the cause


def test_missing_batch_file_is_named(fake_dir):
    (fake_dir / BATCHES_DIR / "data_batch_2").unlink()
    with pytest.raises(CorruptDatasetError, match="lacks data_batch_2. Delete the folder"):
        load_cifar10(fake_dir, download=False)


def test_batch_unpickler_refuses_foreign_globals(fake_dir):
    file = fake_dir / BATCHES_DIR / "data_batch_1"
    with open(file, "wb") as handle:
        pickle.dump({b"data": os.getcwd}, handle)
    with pytest.raises(CorruptDatasetError, match="unexpected global"):
        load_cifar10(fake_dir, download=False)


def test_wrong_image_shape_in_batch(fake_dir):
    write_python3_batch(fake_dir / BATCHES_DIR / "data_batch_1", np.zeros((40, 3000), np.uint8), [0] * 40)
    with pytest.raises(CorruptDatasetError, match=r"data_batch_1: 'data' must be a uint8 array of N x 3072"):
        load_cifar10(fake_dir, download=False)


def test_labels_outside_0_to_9(fake_dir):
    labels = list(range(10)) * 4
    labels[7] = 10
    write_python3_batch(fake_dir / BATCHES_DIR / "data_batch_1", np.zeros((40, 3072), np.uint8), labels)
    with pytest.raises(CorruptDatasetError, match=r"1 train labels are outside 0\.\.9 \(e\.g\. 10\)"):
        load_cifar10(fake_dir, download=False)


def test_missing_class_in_test_batch(fake_dir):
    labels = [y if y != 3 else 4 for y in read_official_style(fake_dir / BATCHES_DIR / "test_batch")["labels"]]
    write_python3_batch(fake_dir / BATCHES_DIR / "test_batch", np.zeros((len(labels), 3072), np.uint8), labels)
    with pytest.raises(CorruptDatasetError, match="the test set has no images of class cat"):
        load_cifar10(fake_dir, download=False)


# --------------------------------------------------------------------------- image folders


def test_png_tree_loads_exactly(tmp_path):
    written = write_image_tree(tmp_path, ".png")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("ignored")
    data, caveats = load_recording(tmp_path, download=False)
    train_x, train_y = written["train"]
    test_x, test_y = written["test"]
    assert_matches(data, (train_x, train_y, test_x, test_y))
    assert data.source.startswith(f"PNG image folder at {tmp_path}") and "lossy" not in data.source
    assert len(caveats) == 1 and "40 training and 20 test images (4 and 2 per class)" in caveats[0]


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".JPG"])
def test_jpeg_tree_loads_and_says_lossy(tmp_path, suffix):
    written = write_image_tree(tmp_path, suffix)
    data, _ = load_recording(tmp_path, download=False)
    assert data.train_images.shape == (40, 32, 32, 3) and data.test_images.shape == (20, 32, 32, 3)
    assert torch.equal(data.train_labels, torch.from_numpy(written["train"][1]))
    # JPEG is lossy: the pixels are near, not equal, to those written.
    error = np.abs(data.train_images.numpy().astype(int) - written["train"][0].astype(int)).mean()
    assert 0 < error < 8
    assert data.source.startswith(f"JPEG image folder (lossy copy) at {tmp_path}")


def test_wrong_size_image_names_the_file(tmp_path):
    write_image_tree(tmp_path, ".png")
    bad = tmp_path / "test" / "dog" / "0001.png"
    Image.new("RGB", (16, 16)).save(bad)
    with pytest.raises(CorruptDatasetError, match=f"{bad} is 16x16 pixels; CIFAR-10 images are 32x32"):
        load_cifar10(tmp_path, download=False)


def test_undecodable_image_names_the_file(tmp_path):
    write_image_tree(tmp_path, ".jpg")
    bad = tmp_path / "train" / "ship" / "0002.jpg"
    bad.write_bytes(bad.read_bytes()[:50])
    with pytest.raises(CorruptDatasetError) as error:
        load_cifar10(tmp_path, download=False)
    assert f"Cannot decode {bad}" in str(error.value) and "Replace it" in str(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_missing_class_folder(tmp_path):
    write_image_tree(tmp_path, ".png", skip_class="frog")
    with pytest.raises(CorruptDatasetError, match="the train set has no images of class frog"):
        load_cifar10(tmp_path, download=False)


def test_unknown_class_folder_and_missing_split(tmp_path):
    write_image_tree(tmp_path, ".png")
    (tmp_path / "train" / "unicorn").mkdir()
    with pytest.raises(CorruptDatasetError, match="'unicorn' is not a CIFAR-10 class"):
        load_cifar10(tmp_path, download=False)
    (tmp_path / "train" / "unicorn").rmdir()
    shutil.rmtree(tmp_path / "test")
    with pytest.raises(CorruptDatasetError, match="has no test/ folder"):
        load_cifar10(tmp_path, download=False)


# --------------------------------------------------------------------------- cache


def test_second_load_reads_the_cache(fake_dir, monkeypatch):
    first, _ = load_recording(fake_dir, download=False)
    (cache,) = (fake_dir / ".cache").glob("cifar10-*")
    assert sorted(f.name for f in cache.iterdir()) == [
        "meta.json", "test_images.npy", "test_labels.npy", "train_images.npy", "train_labels.npy"]

    def must_not_run(*args, **kwargs):
        raise AssertionError("the source was read again")

    monkeypatch.setattr(official._BatchUnpickler, "load", must_not_run)
    monkeypatch.setattr(official, "_md5", must_not_run)
    second, caveats = load_recording(fake_dir, download=False)
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(first, name), getattr(second, name))
    assert second.source == first.source
    assert len(caveats) == 1 and "checksums differ" in caveats[0]  # replayed from the cache


def test_a_cached_copy_read_under_another_path_names_that_path(tmp_path):
    """The cache goes with the data: a copy first read through one path (another checkout's link) and then
    through another names the folder it was read from, not the first one, so two runs on the same data agree."""
    write_image_tree(tmp_path / "real", ".jpg")
    (tmp_path / "first").symlink_to(tmp_path / "real")
    first, _ = load_recording(tmp_path / "first", download=False)
    second, _ = load_recording(tmp_path / "real", download=False)  # from the cache the first load wrote
    assert first.source.startswith(f"JPEG image folder (lossy copy) at {tmp_path / 'first'} ")
    assert second.source.startswith(f"JPEG image folder (lossy copy) at {tmp_path / 'real'} ")
    assert second.digest == first.digest
    (meta,) = (tmp_path / "real" / ".cache").glob("cifar10-*/meta.json")
    assert str(tmp_path) not in meta.read_text()


def test_a_link_inside_the_repository_is_shown_relative_to_it(tmp_path):
    from cifar_helpers.core.paths import REPO_ROOT, shown_path

    link = REPO_ROOT / f".test-link-{tmp_path.name}"
    link.symlink_to(tmp_path)
    try:
        assert shown_path(link / "cifar10-jpeg") == f"{link.name}/cifar10-jpeg"  # not the link's target
    finally:
        link.unlink()


def test_data_inside_the_repository_is_named_relative_to_it_from_the_first_load(tmp_path):
    """The load that decodes (and writes the cache) names the folder as every later load does: an executed
    notebook names no machine's folders, whichever notebook read the data first."""
    write_fake_cifar10(tmp_path, N_TRAIN, N_TEST, mark_generated=True)  # as `make smoke` writes data/fake
    link = paths.REPO_ROOT / f".test-link-{tmp_path.name}"
    link.symlink_to(tmp_path)
    try:
        first, _ = load_recording(link, download=False)  # decodes
        second, _ = load_recording(link, download=False)  # from the cache
    finally:
        link.unlink()
    assert first.source == f"generated data (cifar_helpers.data.fake) at {link.name}/{BATCHES_DIR}"
    assert second.source == first.source


def test_a_read_only_folder_holding_only_the_archive_says_what_to_do(fake_archive, tmp_path, monkeypatch):
    root = tmp_path / "ro"
    root.mkdir()
    shutil.copy(fake_archive, root / ARCHIVE_NAME)

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(official.tempfile, "mkdtemp", read_only)
    with pytest.raises(DataFolderNotWritableError) as error:
        load_cifar10(root, download=False)
    message = str(error.value)
    assert f"{root} cannot be written (Permission denied)" in message
    assert f"tar -xzf {root / ARCHIVE_NAME} -C <folder>" in message and "DATA_DIR" in message


def test_hidden_files_in_class_folders_are_skipped(tmp_path):
    written = write_image_tree(tmp_path, ".jpg")
    (tmp_path / "train" / "cat" / "._0000.jpg").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    (tmp_path / "train" / "cat" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    data, _ = load_recording(tmp_path, download=False)
    assert len(data.train_labels) == len(written["train"][1])


def test_a_broken_symlink_names_the_file(tmp_path):
    write_image_tree(tmp_path, ".png")
    link = tmp_path / "train" / "dog" / "9999.png"
    link.symlink_to(tmp_path / "gone.png")
    with pytest.raises(CorruptDatasetError, match=f"{link} is a broken link.*Restore the file, or delete the link"):
        load_cifar10(tmp_path, download=False)


@pytest.mark.parametrize("where", ["file", "class folder", "split folder", "data folder"])
def test_a_symlink_loop_is_named_with_its_full_path(tmp_path, where):
    root = tmp_path / "data"
    write_image_tree(root, ".png")
    loop = {"file": root / "train" / "cat" / "9999.png", "class folder": root / "test" / "dog",
            "split folder": root / "test", "data folder": root}[where]
    if loop.is_dir():
        shutil.rmtree(loop)
    loop.symlink_to(loop.name)  # points at itself
    with pytest.raises(CorruptDatasetError) as error:
        load_cifar10(root, download=False)
    assert str(error.value) == (f"{loop} is a symbolic link loop: it leads back to itself ({loop} -> {loop.name}). "
                                "Point the link at the real file or folder, or delete it.")


def test_an_unreadable_folder_is_named(tmp_path, monkeypatch):
    write_image_tree(tmp_path, ".png")
    real_scandir = os.scandir

    def denied(path):  # what a folder without read permission does (root, running these tests, may read all)
        if Path(path) == tmp_path / "test":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(image_folders.os, "scandir", denied)
    with pytest.raises(CorruptDatasetError) as error:
        load_cifar10(tmp_path, download=False)
    assert str(error.value).startswith(f"Cannot read {tmp_path / 'test'} (Permission denied). Check that it exists")


@pytest.mark.parametrize("suffix, kind", [(".webp", "WEBP"), (".bmp", "BMP"), (".GIF", "GIF"), (".tiff", "TIFF")])
def test_image_files_of_a_type_the_loader_does_not_read_stop_it(tmp_path, suffix, kind):
    write_image_tree(tmp_path, ".png")
    first = tmp_path / "train" / "ship" / f"0200{suffix}"
    for file in (first, tmp_path / "test" / "bird" / f"0100{suffix}"):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(file, format=kind)
    with pytest.raises(CorruptDatasetError) as error:
        load_cifar10(tmp_path, download=False)
    message = str(error.value)
    assert message.startswith(f"{first} is a {suffix.lower()} image, and 1 more such file in {tmp_path}:")
    assert ".png, .jpg, .jpeg only" in message and "Convert them to PNG" in message


def test_image_folder_cache_and_its_invalidation(tmp_path, monkeypatch):
    write_image_tree(tmp_path, ".png")
    first, _ = load_recording(tmp_path, download=False)
    with monkeypatch.context() as patch:
        patch.setattr(Image, "open", lambda *a, **k: pytest.fail("an image was decoded again"))
        again, _ = load_recording(tmp_path, download=False)
    assert torch.equal(first.train_images, again.train_images)

    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(tmp_path / "test" / "bird" / "9999.png")
    changed, _ = load_recording(tmp_path, download=False)
    assert len(changed.test_labels) == len(first.test_labels) + 1
    assert (changed.test_images == 7).all(dim=(1, 2, 3)).sum() == 1
    assert len(list((tmp_path / ".cache").iterdir())) == 1  # the stale cache is gone


def solid_png(file: Path, value: int) -> None:
    Image.fromarray(np.full((32, 32, 3), value, np.uint8)).save(file)


def test_swapping_two_same_name_same_size_images_between_classes_misses_the_cache(tmp_path, monkeypatch):
    """The JPEG copy gives every file one time, and has many same-name, same-size pairs across classes."""
    write_image_tree(tmp_path, ".png")
    cat, dog = tmp_path / "train" / "cat" / "0000.png", tmp_path / "train" / "dog" / "0000.png"
    solid_png(cat, 10)
    solid_png(dog, 200)
    stamp = 1_500_000_000 * 10**9
    for file in (cat, dog):
        os.utime(file, ns=(stamp, stamp))
    before = {f: (f.stat().st_size, f.stat().st_mtime_ns) for f in (cat, dog)}
    assert before[cat] == before[dog]  # same name, same size, same time
    first, _ = load_recording(tmp_path, download=False)

    cat_bytes, dog_bytes = cat.read_bytes(), dog.read_bytes()
    cat.write_bytes(dog_bytes)
    dog.write_bytes(cat_bytes)
    for file in (cat, dog):
        os.utime(file, ns=(stamp, stamp))
    assert {f: (f.stat().st_size, f.stat().st_mtime_ns) for f in (cat, dog)} == before  # only the bytes moved
    decoded = []
    real_decode = image_folders._decode_image
    monkeypatch.setattr(image_folders, "_decode_image", lambda file: decoded.append(file) or real_decode(file))
    second, _ = load_recording(tmp_path, download=False)
    assert decoded  # the cache of the old contents was not used
    assert second.digest != first.digest
    solid = lambda data, value: data.train_labels[(data.train_images == value).all(dim=(1, 2, 3))].tolist()  # noqa: E731
    assert (solid(first, 10), solid(first, 200)) == ([3], [5])  # cat, dog
    assert (solid(second, 10), solid(second, 200)) == ([5], [3])  # the swap, as it now is on disk
    decoded.clear()
    third, _ = load_recording(tmp_path, download=False)
    assert not decoded and third.digest == second.digest  # and the new contents are cached


def test_an_edited_batch_file_of_the_same_size_and_time_misses_the_cache(fake_dir):
    before, _ = load_recording(fake_dir, download=False)
    file = fake_dir / BATCHES_DIR / "data_batch_3"
    blob, mtime = bytearray(file.read_bytes()), file.stat().st_mtime_ns
    blob[len(blob) // 2] ^= 0xFF  # one pixel value: the middle of the file is image data
    file.write_bytes(blob)
    os.utime(file, ns=(mtime, mtime))
    after, _ = load_recording(fake_dir, download=False)
    assert_matches(after, expected_arrays(fake_dir / BATCHES_DIR))
    assert after.digest != before.digest


def test_the_recorded_digest_of_unchanged_data_is_the_one_recorded_before(fake_dir, tmp_path):
    """Results files and checkpoints record the digest: for the same data it keeps the value it had
    before the cache key came from the files' bytes (pinned from commit 87e2e3b), so they still count."""
    written = write_image_tree(tmp_path / "png", ".png")
    for _ in range(2):  # decoded, then from the cache
        png, _ = load_recording(tmp_path / "png", download=False)
        batches, _ = load_recording(fake_dir, download=False)
        assert png.digest == "21fe2676a1f15e1f" == content_digest([*written["train"], *written["test"]])
        assert batches.digest == "d23a286daf2c05ad" == content_digest(expected_arrays(fake_dir / BATCHES_DIR))


def test_cache_is_rebuilt_when_batches_change(fake_dir):
    before, _ = load_recording(fake_dir, download=False)
    write_fake_cifar10(fake_dir, N_TRAIN, N_TEST, seed=1)  # same names and sizes, other pixels
    for file in (fake_dir / BATCHES_DIR).iterdir():  # mtimes may tie within a clock tick
        os.utime(file, ns=(file.stat().st_atime_ns, file.stat().st_mtime_ns + 10**9))
    after, _ = load_recording(fake_dir, download=False)
    assert not torch.equal(before.train_images, after.train_images)
    assert_matches(after, expected_arrays(fake_dir / BATCHES_DIR))


def test_a_summary_is_what_a_load_gives_read_from_the_cache_without_the_images(fake_dir, monkeypatch):
    """`make run` asks only the digest and the counts: from the cache it reads no image and decodes nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CIFAR10Warning)
        first = summarize_cifar10(fake_dir)  # never loaded before: loaded once, into the cache
    loaded, _ = load_recording(fake_dir, download=False)
    assert first == DataSummary(loaded.digest, N_TRAIN, N_TEST)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the images were read or decoded")

    monkeypatch.setattr(cifar10, "load_cifar10", must_not_run)
    monkeypatch.setattr(data_cache, "read", must_not_run)
    monkeypatch.setattr(official._BatchUnpickler, "load", must_not_run)
    assert summarize_cifar10(fake_dir) == first
    monkeypatch.undo()
    write_fake_cifar10(fake_dir, N_TRAIN, N_TEST, seed=1)  # other pixels: the cache's key no longer matches
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CIFAR10Warning)
        changed = summarize_cifar10(fake_dir)
    reloaded, _ = load_recording(fake_dir, download=False)
    assert changed.digest != first.digest and changed == DataSummary(reloaded.digest, N_TRAIN, N_TEST)


def test_the_first_load_of_an_image_folder_shows_its_progress(tmp_path, capsys, monkeypatch):
    write_image_tree(tmp_path, ".jpg")
    load_recording(tmp_path, download=False)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Decoding the 60 images in {tmp_path} (once: the arrays are cached for later loads)"
    assert out[1] == "  60 of 60 images (100%)" and out[2].startswith("Decoded 60 images in ")
    load_recording(tmp_path, download=False)
    assert capsys.readouterr().out == ""  # from the cache: nothing to wait for
    shutil.rmtree(tmp_path / ".cache")
    monkeypatch.setenv("CIFAR_PROGRESS", "bar")  # in JupyterLab: a bar
    load_recording(tmp_path, download=False)
    assert "60/60" in capsys.readouterr().out


def test_progress_lines_come_at_every_tenth():
    import contextlib
    import io

    from cifar_helpers.core.progress import counted

    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), counted(60_000, "image", "lines") as advance:
        for _ in range(30):
            advance(2000)
    lines = shown.getvalue().splitlines()
    assert len(lines) == 10 and lines[0] == "  6,000 of 60,000 images (10%)" and lines[-1].endswith("(100%)")


LOAD_KILLED_WHILE_CACHING = """
import os, signal, sys
import numpy as np
from cifar_helpers.data.cifar10 import load_cifar10
real_save = np.save
def save_then_die(*args, **kwargs):
    real_save(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # a real kill: no cleanup runs
np.save = save_then_die
load_cifar10(sys.argv[1], download=False)
"""

CACHE_BEING_WRITTEN = """
import sys, tempfile, time
from cifar_helpers.core.files import held_while_written
tmp = tempfile.mkdtemp(prefix=".cifar10-live-", dir=sys.argv[1])
with held_while_written(tmp):
    print(tmp, flush=True)
    time.sleep(600)
"""


def test_half_written_caches_of_killed_loads_are_removed_at_the_next_load(fake_dir):
    import subprocess
    import sys

    killed = subprocess.run([sys.executable, "-c", LOAD_KILLED_WHILE_CACHING, str(fake_dir)])
    assert killed.returncode == -9
    (dead,) = (fake_dir / ".cache").glob(".cifar10-*")
    assert (dead / "train_images.npy").is_file()  # what a killed first load leaves
    (fake_dir / ".extract-killed").mkdir()
    (fake_dir / ".download-killed").mkdir()
    live = subprocess.Popen([sys.executable, "-c", CACHE_BEING_WRITTEN, str(fake_dir / ".cache")],
                            stdout=subprocess.PIPE, text=True)
    try:
        live_tmp = Path(live.stdout.readline().strip())
        data, _ = load_recording(fake_dir, download=False)
        assert_matches(data, expected_arrays(fake_dir / BATCHES_DIR))
        assert not dead.exists() and live_tmp.is_dir()  # another load's cache in the making stays
        assert sorted(p.name for p in fake_dir.iterdir()) == [".cache", BATCHES_DIR]
    finally:
        live.kill()
        live.wait()


def test_corrupt_cache_is_ignored_and_rebuilt(fake_dir):
    expected = expected_arrays(fake_dir / BATCHES_DIR)
    load_recording(fake_dir, download=False)
    (cache,) = (fake_dir / ".cache").glob("cifar10-*")
    blob = (cache / "train_images.npy").read_bytes()
    (cache / "train_images.npy").write_bytes(blob[: len(blob) // 2])
    data, messages = load_recording(fake_dir, download=False)
    assert_matches(data, expected)
    assert any(f"Ignoring the unreadable cache {cache}" in m and "rebuilding" in m for m in messages)
    data, messages = load_recording(fake_dir, download=False)
    assert_matches(data, expected)
    assert not any("Ignoring the unreadable cache" in m for m in messages)


def test_unreadable_cache_metadata_is_ignored(fake_dir):
    load_recording(fake_dir, download=False)
    (cache,) = (fake_dir / ".cache").glob("cifar10-*")
    (cache / "meta.json").write_text("{not json")
    data, messages = load_recording(fake_dir, download=False)
    assert_matches(data, expected_arrays(fake_dir / BATCHES_DIR))
    assert any("Ignoring the unreadable cache" in m and "JSONDecodeError" in m for m in messages)


def test_cache_that_cannot_be_written_does_not_stop_a_load(fake_dir, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", disk_full)
    data, messages = load_recording(fake_dir, download=False)
    assert_matches(data, expected_arrays(fake_dir / BATCHES_DIR))
    assert any("Could not write the cache" in m and "No space left" in m for m in messages)
    assert not list((fake_dir / ".cache").iterdir())  # no half-written cache


# --------------------------------------------------------------------------- no data, download, CIFAR10_DIR


def test_empty_dir_without_download(tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        load_cifar10(tmp_path, download=False)
    assert isinstance(error.value, FileNotFoundError) and isinstance(error.value, CIFAR10Error)
    message = str(error.value)
    for part in (f"No CIFAR-10 data in {tmp_path}", "download=False", "cifar-10-batches-py/",
                 "cifar-10-python.tar.gz", "train/<class>/", OFFICIAL_URL, OFFICIAL_MD5,
                 f"put cifar-10-python.tar.gz in {tmp_path}", "CIFAR10_DIR"):
        assert part in message


@pytest.fixture
def archive_server(fake_archive):
    """The fake archive served over HTTP on 127.0.0.1; yields its URL and the request count."""
    import http.server
    import threading

    payload, requests = fake_archive.read_bytes(), []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{ARCHIVE_NAME}", requests
    server.shutdown()
    server.server_close()


@pytest.fixture
def stalled_server():
    """A server on 127.0.0.1 that accepts connections and never answers."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/{ARCHIVE_NAME}"
    listener.close()


def test_download_over_http_with_progress_and_no_leftovers(archive_server, pristine_fake, tmp_path, monkeypatch,
                                                            capsys):
    url, requests = archive_server
    monkeypatch.setattr(official, "OFFICIAL_URL", url)
    root = tmp_path / "fresh"  # does not exist yet
    (root / ".download-killed-earlier").mkdir(parents=True)  # what a killed download leaves
    data, caveats = load_recording(root, download=True)
    assert requests == [f"/{ARCHIVE_NAME}"]
    assert_matches(data, expected_arrays(pristine_fake / BATCHES_DIR))
    assert (root / ARCHIVE_NAME).is_file() and not list(root.glob(".download-*"))
    out = capsys.readouterr().out
    assert f"Downloading {url}" in out and "(100%)" in out
    assert len(caveats) == 1 and "checksums differ from the official release" in caveats[0]
    load_recording(root, download=True)
    assert len(requests) == 1  # nothing downloaded twice


def test_a_stalled_download_times_out_with_the_offline_steps(stalled_server, tmp_path, monkeypatch):
    import time

    monkeypatch.setattr(official, "OFFICIAL_URL", stalled_server)
    monkeypatch.setattr(official, "DOWNLOAD_TIMEOUT", 1)
    started = time.monotonic()
    with pytest.raises(DatasetNotFoundError) as error:
        load_cifar10(tmp_path, download=True)
    assert time.monotonic() - started < 30
    message = str(error.value)
    assert "no data from the server for 1 s" in message
    assert f"put cifar-10-python.tar.gz in {tmp_path}" in message and "CIFAR10_DIR" in message
    assert not list(tmp_path.iterdir())  # no .download-* left behind


def refused_url() -> str:
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: the connection is refused
    return f"http://127.0.0.1:{port}/{ARCHIVE_NAME}"


def test_failed_download_is_a_not_found_error(tmp_path, monkeypatch):
    monkeypatch.setattr(official, "OFFICIAL_URL", refused_url())
    with pytest.raises(DatasetNotFoundError) as error:
        load_cifar10(tmp_path, download=True)
    assert error.value.__cause__ is None and error.value.__suppress_context__  # the message says it all
    message = str(error.value)
    assert "download" in message and "failed" in message and "refused" in message.lower()
    assert str(tmp_path) in message and "CIFAR10_DIR" in message
    assert not list(tmp_path.iterdir())


def test_offline_a_plain_script_gets_the_workbooks_error_alone(tmp_path):
    """Not a chained traceback with the network error first: the message already holds it."""
    import subprocess
    import sys

    script = (f"from cifar_helpers.data import cifar10, official\nofficial.OFFICIAL_URL = {refused_url()!r}\n"
              f"cifar10.load_cifar10({str(tmp_path)!r})\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.count("Traceback") == 1 and "URLError" not in done.stderr
    assert "During handling" not in done.stderr and "direct cause" not in done.stderr
    last = done.stderr.rstrip().split("\n")
    assert any(line.startswith("cifar_helpers.data.errors.DatasetNotFoundError: No CIFAR-10 data in") for line in last)
    assert "refused" in done.stderr.lower()


def test_cifar10_dir_overrides_the_default(fake_dir, monkeypatch):
    monkeypatch.setenv("CIFAR10_DIR", str(fake_dir))
    assert paths.default_data_dir() == fake_dir
    data, _ = load_recording(download=False)
    assert str(fake_dir) in data.source


def test_relative_data_dir_starts_at_the_repo_root():
    with pytest.raises(DatasetNotFoundError) as error:
        load_cifar10("no-such-folder-for-tests", download=False)
    assert f"{paths.REPO_ROOT / 'no-such-folder-for-tests'} (the folder does not exist)" in str(error.value)


# --------------------------------------------------------------------------- using the data


def test_channel_stats_match_numpy(fake_dir):
    data, _ = load_recording(fake_dir, download=False)
    pixels = data.train_images.numpy().astype(np.float64) / 255
    mean, std = channel_stats(data.train_images)
    np.testing.assert_allclose(mean, pixels.mean(axis=(0, 1, 2)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(std, pixels.std(axis=(0, 1, 2)), rtol=0, atol=1e-12)
    assert data.normalization == (mean, std)
    many = torch.randint(0, 256, (2500, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    pixels = many.numpy().astype(np.float64) / 255  # more than one chunk
    np.testing.assert_allclose(channel_stats(many)[1], pixels.std(axis=(0, 1, 2)), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="uint8 N x H x W x 3"):
        channel_stats(many.float())


def test_subset_is_seeded_balanced_and_not_the_first_images(fake_dir):
    data, _ = load_recording(fake_dir, download=False)
    small = subset(data, 50, 20)
    assert len(small.train_labels) == 50 and len(small.test_labels) == 20
    assert torch.bincount(small.train_labels, minlength=10).tolist() == [5] * 10
    assert torch.bincount(small.test_labels, minlength=10).tolist() == [2] * 10
    again = subset(data, 50, 20)
    assert torch.equal(small.train_images, again.train_images) and torch.equal(small.test_labels, again.test_labels)
    other = subset(data, 50, 20, seed=24)
    assert not torch.equal(small.train_images, other.train_images)
    assert not torch.equal(small.train_images, data.train_images[:50])
    # Every kept image is one of the originals, with its own label.
    originals = {bytes(x.numpy()): int(y) for x, y in zip(data.train_images, data.train_labels)}
    assert all(originals[bytes(x.numpy())] == int(y) for x, y in zip(small.train_images, small.train_labels))
    assert "subset (seed 23)" in small.source and len(subset(data, N_TRAIN, N_TEST).train_labels) == N_TRAIN


@pytest.mark.parametrize("n_train, n_test, message", [
    (0, 10, "n_train must be a positive int, got 0"),
    (-5, 10, "n_train must be a positive int"),
    (2.5, 10, "n_train must be a positive int, got 2.5"),
    (True, 10, "n_train must be a positive int, got True"),
    (10, "3", "n_test must be a positive int, got '3'"),
    (N_TRAIN + 1, 10, f"n_train={N_TRAIN + 1} but the data have only {N_TRAIN} images"),
    (10, N_TEST + 1, f"n_test={N_TEST + 1} but the data have only {N_TEST} images"),
])
def test_subset_validates_its_arguments(fake_dir, n_train, n_test, message):
    data, _ = load_recording(fake_dir, download=False)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        subset(data, n_train, n_test)


def test_counts(fake_dir):
    data, _ = load_recording(fake_dir, download=False)
    table = counts(data)
    assert list(table.index) == list(CIFAR10_CLASSES) and list(table.columns) == ["train", "test"]
    assert table["train"].tolist() == [20] * 10 and table["test"].tolist() == [5] * 10
    assert "CIFAR10(train=200, test=50" in repr(data)


def test_the_runners_generated_data_loads_without_a_warning(tmp_path):
    """`make smoke` warned in every notebook that the data it had generated itself differ from the
    official release; data from elsewhere with the same files still warns (test_loads_official_folder)."""
    from cifar_helpers.workbook.run_all import make_fake_data

    folder = tmp_path / "fake"
    make_fake_data({"fake_data": {"dir": str(folder), "n_train": N_TRAIN, "n_test": N_TEST}})
    data, caveats = load_recording(folder, download=False)
    assert caveats == []
    assert data.source == f"generated data (cifar_helpers.data.fake) at {folder / BATCHES_DIR}"
    unmarked = write_fake_cifar10(tmp_path / "unmarked", N_TRAIN, N_TEST, seed=0).parent
    same, _ = load_recording(unmarked, download=False)
    assert same.digest == data.digest  # the mark names the writer; the images and labels are the same
