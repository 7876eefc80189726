"""gpumix-make-fashion: Fashion-MNIST IDX files to CIFAR-10 binary files, on tiny IDX files made here."""
import gzip
import os

import numpy as np
import pytest

from gpumix.pipelines.cifar_files import load_cifar
from gpumix.tools import fashion as tool
from gpumix.tools.cifar_writer import FOLDER, grey_rows, new_folder, run_tool

PER_CLASS_TRAIN, TEST = 6, 37


def _idx_bytes(array):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.tobytes()


def _write(folder, name, array, gz=True):
    raw = _idx_bytes(array)
    if gz:
        with gzip.open(folder / (name + ".gz"), "wb") as f:
            f.write(raw)
    else:
        (folder / name).write_bytes(raw)


@pytest.fixture
def idx(tmp_path):
    """A tiny Fashion-MNIST: 6 random 28x28 images per class in a shuffled order, 37 test images, as .gz IDX."""
    rng = np.random.default_rng(5)
    folder = tmp_path / "idx"
    folder.mkdir()
    labels = rng.permutation(np.repeat(np.arange(10), PER_CLASS_TRAIN))
    train = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
    test_labels = rng.integers(0, 10, size=TEST)
    test_labels[:10] = np.arange(10)  # every class at least 3 times: 0..9 three times in the first 30
    test_labels[10:30] = np.tile(np.arange(10), 2)
    test = rng.integers(0, 256, size=(TEST, 28, 28), dtype=np.uint8)
    for (split, kind), name in tool.IDX_FILES.items():
        array = {("train", "images"): train, ("train", "labels"): labels, ("test", "images"): test,
                 ("test", "labels"): test_labels}[(split, kind)]
        _write(folder, name, array)
    return dict(dir=folder, train=train, labels=labels, test=test, test_labels=test_labels)


def _padded_hwc(images):
    """The expected 32x32x3 images, built independently: a zero canvas with the 28x28 image at (2, 2) in each plane."""
    out = np.zeros((len(images), 32, 32, 3), dtype=np.uint8)
    out[:, 2:30, 2:30, :] = images[..., None]
    return out


def _source_index(idx, images):
    by_bytes = {img.tobytes(): i for i, img in enumerate(_padded_hwc(idx["train"]))}
    return np.array([by_bytes[img.tobytes()] for img in images])


def test_balanced_subset_and_full_test_set(tmp_path, idx):
    out = tool.make_fashion(idx["dir"], tmp_path / "a", per_class=4, seed=3)
    assert out == str(tmp_path / "a")
    images, labels = load_cifar(out, "cifar10", "train")
    assert images.shape == (40, 32, 32, 3)
    src = _source_index(idx, images)
    assert len(set(src.tolist())) == 40  # drawn without replacement
    assert (labels == idx["labels"][src]).all()  # each image keeps its own label
    assert np.bincount(labels, minlength=10).tolist() == [4] * 10
    assert not (np.diff(labels) == 0).all() and sorted(src.tolist()) != src.tolist()  # shuffled order
    test_images, test_labels = load_cifar(out, "cifar10", "test")
    assert (test_images == _padded_hwc(idx["test"])).all() and (test_labels == idx["test_labels"]).all()
    # the same seed gives the same bytes, another seed another subset
    tool.make_fashion(idx["dir"], tmp_path / "b", per_class=4, seed=3)
    tool.make_fashion(idx["dir"], tmp_path / "c", per_class=4, seed=4)
    first = (tmp_path / "a" / FOLDER / "data_batch_1.bin").read_bytes()
    assert (tmp_path / "b" / FOLDER / "data_batch_1.bin").read_bytes() == first
    assert (tmp_path / "c" / FOLDER / "data_batch_1.bin").read_bytes() != first


def test_all_images_and_plain_idx_files(tmp_path, idx):
    plain = tmp_path / "plain"
    plain.mkdir()
    arrays = {("train", "images"): idx["train"], ("train", "labels"): idx["labels"],
              ("test", "images"): idx["test"], ("test", "labels"): idx["test_labels"]}
    for key, name in tool.IDX_FILES.items():
        _write(plain, name, arrays[key], gz=False)
    out = tool.make_fashion(plain, tmp_path / "all", seed=0)
    images, labels = load_cifar(out, "cifar10", "train")
    assert sorted(_source_index(idx, images).tolist()) == list(range(10 * PER_CLASS_TRAIN))


def test_corrupted_labels_keep_images_and_test_labels(tmp_path, idx):
    clean = tool.make_fashion(idx["dir"], tmp_path / "clean", per_class=5, seed=2)
    noisy = tool.make_fashion(idx["dir"], tmp_path / "noisy", per_class=5, seed=2, corrupt_fraction=0.6)
    images, labels = load_cifar(clean, "cifar10", "train")
    noisy_images, noisy_labels = load_cifar(noisy, "cifar10", "train")
    assert (images == noisy_images).all()
    changed = int((labels != noisy_labels).sum())
    assert 15 <= changed <= 30  # 30 labels redrawn uniformly from 10 classes: about 27 change
    assert (load_cifar(noisy, "cifar10", "test")[1] == idx["test_labels"]).all()


def test_test_per_class_keeps_the_first_of_each_class_in_order(tmp_path, idx):
    out = tool.make_fashion(idx["dir"], tmp_path / "t", per_class=2, test_per_class=3)
    test_images, test_labels = load_cifar(out, "cifar10", "test")
    keep = np.sort(np.concatenate([np.flatnonzero(idx["test_labels"] == k)[:3] for k in range(10)]))
    assert len(keep) == 30 and (test_labels == idx["test_labels"][keep]).all()
    assert (test_images == _padded_hwc(idx["test"][keep])).all()


def _corrupt(folder, name, raw):
    os.remove(folder / (name + ".gz"))
    with gzip.open(folder / (name + ".gz"), "wb") as f:
        f.write(raw)


@pytest.mark.parametrize("case, match", [
    ("no folder", r"is not a folder.*apt-get install dataset-fashion-mnist"),
    ("missing file", r"t10k-labels-idx1-ubyte\.gz .*is missing"),
    ("not gzip", r"train-images-idx3-ubyte\.gz: not a readable gzip IDX file"),
    ("bad magic", r"train-labels-idx1-ubyte\.gz: not an IDX file"),
    ("bad type", r"train-images-idx3-ubyte\.gz: element type 0x0d"),
    ("truncated", r"t10k-images-idx3-ubyte\.gz: header says shape \(37, 28, 28\)"),
    ("count mismatch", r"train-labels-idx1-ubyte\.gz: 59 labels for the 60 images"),
    ("bad label", r"t10k-labels-idx1-ubyte\.gz: label 12 at index 4"),
    ("too few", r"per_class: 7 images of class 0 asked for"),
])
def test_bad_input_names_the_file(tmp_path, idx, case, match):
    folder, per_class = idx["dir"], 2
    if case == "no folder":
        folder = tmp_path / "absent"
    elif case == "missing file":
        os.remove(folder / "t10k-labels-idx1-ubyte.gz")
    elif case == "not gzip":
        (folder / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip data")
    elif case == "bad magic":
        _corrupt(folder, "train-labels-idx1-ubyte", b"\x01\x02" + _idx_bytes(idx["labels"])[2:])
    elif case == "bad type":
        raw = bytearray(_idx_bytes(idx["train"]))
        raw[2] = 0x0D
        _corrupt(folder, "train-images-idx3-ubyte", bytes(raw))
    elif case == "truncated":
        _corrupt(folder, "t10k-images-idx3-ubyte", _idx_bytes(idx["test"])[:-5])
    elif case == "count mismatch":
        _corrupt(folder, "train-labels-idx1-ubyte", _idx_bytes(idx["labels"][:-1]))
    elif case == "bad label":
        labels = idx["test_labels"].copy()
        labels[4] = 12
        _corrupt(folder, "t10k-labels-idx1-ubyte", _idx_bytes(labels))
    else:
        per_class = 7
    with pytest.raises((FileNotFoundError, ValueError), match=match):
        tool.make_fashion(folder, tmp_path / "out", per_class=per_class)
    assert not (tmp_path / "out" / FOLDER).exists()


def test_cli_help_bad_value_and_existing_output(tmp_path, idx, capsys):
    with pytest.raises(SystemExit):
        tool.main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--idx-dir", "--output", "--per-class", "--corrupt-fraction", "--test-per-class", "--seed"):
        assert flag in text
    assert tool.main(["--idx-dir", str(idx["dir"]), "--output", str(tmp_path / "o"), "--per-class", "0"]) == 1
    assert "per_class must be >= 1, got 0" in capsys.readouterr().err
    assert tool.main(["--idx-dir", str(idx["dir"]), "--output", str(tmp_path / "o"), "--per-class", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "o")
    assert tool.main(["--idx-dir", str(idx["dir"]), "--output", str(tmp_path / "o")]) == 1
    assert "already exists" in capsys.readouterr().err


def test_grey_rows_repeat_the_plane_as_r_g_b_without_touching_the_input():
    images = np.arange(2 * 32 * 32, dtype=np.int64).reshape(2, 32, 32).astype(np.uint8)
    before = images.copy()
    rows = grey_rows(images)
    assert rows.dtype == np.uint8 and rows.shape == (2, 3072)
    planes = rows.reshape(2, 3, 32, 32)
    assert all(np.array_equal(planes[:, c], images) for c in range(3))
    assert np.array_equal(images, before)
    with pytest.raises(ValueError, match=r"images must be uint8 \(N, 32, 32\), got uint8 \(2, 28, 28\)"):
        grey_rows(np.zeros((2, 28, 28), dtype=np.uint8))


def test_new_folder_and_run_tool(tmp_path, capsys):
    assert new_folder(tmp_path) == os.path.join(str(tmp_path), FOLDER)
    os.makedirs(tmp_path / FOLDER)
    with pytest.raises(FileExistsError, match=f"output: .*{FOLDER} already exists"):
        new_folder(tmp_path, "output")
    assert run_tool("tool", lambda: "made") == 0 and capsys.readouterr().out == "made\n"

    def fail():
        raise ValueError("bad seed")

    assert run_tool("tool", fail) == 1 and capsys.readouterr().err == "tool: error: bad seed\n"
