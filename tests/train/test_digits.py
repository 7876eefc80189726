"""gpumix-make-digits: CIFAR-10 binary files from scikit-learn's digits, with optional label corruption."""
import os
import sys

import numpy as np
import pytest

sklearn_datasets = pytest.importorskip("sklearn.datasets")

from gpumix.pipelines.cifar_files import load_cifar  # noqa: E402
from gpumix.tools import digits as tool  # noqa: E402

RECORD = 1 + 3 * 32 * 32


@pytest.fixture(scope="module")
def source():
    """The 1797 digits upsampled by hand (np.kron: each pixel a 4x4 block), as CHW bytes, and their labels."""
    d = sklearn_datasets.load_digits()
    big = np.kron(d.images, np.ones((4, 4)))
    pixels = np.rint(big * 255 / 16).astype(np.uint8)
    rows = np.repeat(pixels.reshape(len(pixels), 1, -1), 3, axis=1).reshape(len(pixels), -1)
    return rows, d.target


def _records(folder, names):
    raw = np.concatenate([np.fromfile(os.path.join(folder, n), dtype=np.uint8) for n in names])
    rows = raw.reshape(-1, RECORD)
    return rows[:, 0].astype(np.int64), rows[:, 1:]


def _true_labels(source, images):
    """Each record's label found from its pixels (digits with identical pixels share a label)."""
    rows, labels = source
    by_pixels = {}
    for r, y in zip(rows, labels):
        by_pixels.setdefault(r.tobytes(), set()).add(int(y))
    found = [by_pixels[img.tobytes()] for img in images]
    assert all(len(s) == 1 for s in found)
    return np.array([s.pop() for s in found])


TRAIN = [f"data_batch_{k}.bin" for k in range(1, 6)]


def test_files_sizes_and_first_record(tmp_path, source):
    out = tool.make_digits(tmp_path / "d", seed=3)
    assert out == str(tmp_path / "d")
    folder = tmp_path / "d" / tool.FOLDER
    assert sorted(os.listdir(folder)) == sorted(TRAIN + ["test_batch.bin", "batches.meta.txt"])
    n_test = round(1797 * 0.25)
    assert sum((folder / n).stat().st_size for n in TRAIN) == (1797 - n_test) * RECORD
    assert (folder / "test_batch.bin").stat().st_size == n_test * RECORD
    assert (folder / "batches.meta.txt").read_text().split() == [str(k) for k in range(10)]
    labels, images = _records(folder, TRAIN)
    rows, targets = source
    first = np.flatnonzero((rows == images[0]).all(axis=1))
    assert first.size >= 1 and labels[0] == targets[first[0]]
    # planes are R, G, B of the same digit; the digit is its 8x8 source, each pixel a 4x4 block
    plane = images[0][:1024].reshape(32, 32)
    assert (images[0][1024:2048] == images[0][:1024]).all() and (images[0][2048:] == images[0][:1024]).all()
    assert (plane[::4, ::4] == np.rint(sklearn_datasets.load_digits().images[first[0]] * 255 / 16)).all()
    # every digit appears exactly once across train and test, with its own label
    test_labels, test_images = _records(folder, ["test_batch.bin"])
    all_labels = np.concatenate([labels, test_labels])
    assert (all_labels == _true_labels(source, np.concatenate([images, test_images]))).all()
    assert sorted(map(bytes, np.concatenate([images, test_images]))) == sorted(map(bytes, rows))
    # the same seed gives the same files, another seed another split
    tool.make_digits(tmp_path / "again", seed=3)
    tool.make_digits(tmp_path / "other", seed=4)
    same = (tmp_path / "again" / tool.FOLDER / "test_batch.bin").read_bytes()
    assert same == (folder / "test_batch.bin").read_bytes()
    assert (tmp_path / "other" / tool.FOLDER / "test_batch.bin").read_bytes() != same


def test_corrupted_train_labels_and_intact_test_labels(tmp_path, source):
    tool.make_digits(tmp_path, seed=1, corrupt_fraction=0.5, test_fraction=0.2)
    folder = tmp_path / tool.FOLDER
    labels, images = _records(folder, TRAIN)
    changed = np.mean(labels != _true_labels(source, images))
    assert 0.40 <= changed <= 0.50  # half redrawn, a tenth of those land on the true label again
    assert set(np.unique(labels)) == set(range(10))
    test_labels, test_images = _records(folder, ["test_batch.bin"])
    assert len(test_labels) == round(1797 * 0.2)
    assert (test_labels == _true_labels(source, test_images)).all()


def test_the_project_cifar_reader_loads_it(tmp_path):
    tool.make_digits(tmp_path, seed=0)
    x, y = load_cifar(str(tmp_path), "cifar10", "train")
    xt, yt = load_cifar(str(tmp_path), "cifar10", "test")
    assert x.shape == (1797 - 449, 32, 32, 3) and xt.shape == (449, 32, 32, 3) and x.dtype == np.uint8
    assert len(y) == len(x) and len(yt) == len(xt) and set(np.unique(y)) == set(range(10))
    assert (x[..., 0] == x[..., 2]).all() and x.max() == 255


def test_cli_and_errors(tmp_path, capsys, monkeypatch):
    assert tool.main([str(tmp_path / "c"), "--seed", "2", "--corrupt-fraction", "0.1"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "c")
    assert tool.main([str(tmp_path / "c")]) == 1
    assert "cifar-10-batches-bin already exists" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"corrupt_fraction must be in \[0.0, 1.0\], got 1.5"):
        tool.make_digits(tmp_path / "e", corrupt_fraction=1.5)
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\), got 0.0"):
        tool.make_digits(tmp_path / "e", test_fraction=0.0)
    with pytest.raises(ValueError, match=r"test_fraction must be in \[0.0, 1.0\), got 1.0"):
        tool.make_digits(tmp_path / "e", test_fraction=1.0)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"make_digits needs scikit-learn: pip install gpumix\[digits\]"):
        tool.make_digits(tmp_path / "e")
    assert not (tmp_path / "e").exists() or os.listdir(tmp_path / "e") == []
