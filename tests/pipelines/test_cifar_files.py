"""CIFAR readers: binary and python formats agree, and hostile or broken files are refused by name."""
import os
import pickle

import numpy as np
import pytest

from gpumix.pipelines.cifar_files import load_cifar


@pytest.mark.parametrize("dataset, label", [("cifar10", "fine"), ("cifar100", "fine"), ("cifar100", "coarse")])
@pytest.mark.parametrize("split", ["train", "test"])
def test_binary_and_python_formats_give_identical_arrays(datasets, dataset, label, split):
    xb, yb = load_cifar(datasets[f"{dataset}-binary"], dataset, split, label)
    xp, yp = load_cifar(datasets[f"{dataset}-python"], dataset, split, label)
    assert xb.shape == xp.shape and xb.shape[1:] == (32, 32, 3) and xb.dtype == np.uint8
    assert np.array_equal(xb, xp) and np.array_equal(yb, yp) and yb.dtype == np.int32
    assert yb.max() < (20 if label == "coarse" else (10 if dataset == "cifar10" else 100))
    assert xb.std() > 10  # real content, not zeros


def _copied_folder(datasets, tmp_path, fmt):
    """A writable copy of the session's CIFAR-10 ``fmt`` ("python" or "binary") folder under tmp_path."""
    import shutil
    name = {"python": "cifar-10-batches-py", "binary": "cifar-10-batches-bin"}[fmt]
    folder = tmp_path / name
    shutil.copytree(os.path.join(datasets[f"cifar10-{fmt}"], name), folder)
    return folder


def _python_folder(datasets, tmp_path):
    return _copied_folder(datasets, tmp_path, "python")


def test_numpy_1_pickles_load(datasets, tmp_path):
    folder = _python_folder(datasets, tmp_path)
    want = load_cifar(str(tmp_path), "cifar10", "test")
    raw = (folder / "test_batch").read_bytes()
    assert b"numpy._core.multiarray" in raw
    (folder / "test_batch").write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    got = load_cifar(str(tmp_path), "cifar10", "test")
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_runs_nothing(datasets, tmp_path):
    folder = _python_folder(datasets, tmp_path)
    marker = tmp_path / "pwned"
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": _Exploit(marker), b"labels": [0]}, f, protocol=2)
    with pytest.raises(ValueError, match=r"test_batch: refusing to load global posix.system"):
        load_cifar(str(tmp_path), "cifar10", "test")
    assert not marker.exists()


def test_pickle_with_wrong_shapes(datasets, tmp_path):
    folder = _python_folder(datasets, tmp_path)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, f, protocol=2)
    with pytest.raises(ValueError, match=r"test_batch: b'data' must be uint8 \(N, 3072\), got uint8 \(4, 100\)"):
        load_cifar(str(tmp_path), "cifar10", "test")


def test_pickle_holding_something_else(datasets, tmp_path):
    folder = _python_folder(datasets, tmp_path)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump([1, 2, 3], f, protocol=2)
    with pytest.raises(ValueError, match=r"test_batch: expected a dict with b'data' and b'labels', got list"):
        load_cifar(str(tmp_path), "cifar10", "test")


def test_truncated_binary_file_names_file_and_offset(datasets, tmp_path):
    import shutil
    folder = tmp_path / "cifar-10-batches-bin"
    shutil.copytree(os.path.join(datasets["cifar10-binary"], "cifar-10-batches-bin"), folder)
    raw = (folder / "test_batch.bin").read_bytes()
    (folder / "test_batch.bin").write_bytes(raw[:-100])
    records = len(raw) // 3073
    with pytest.raises(ValueError, match=rf"test_batch.bin: truncated or oversized: .* the record at byte offset "
                                         rf"{(records - 1) * 3073} is incomplete"):
        load_cifar(str(tmp_path), "cifar10", "test")


def test_label_outside_classes(datasets, tmp_path):
    import shutil
    folder = tmp_path / "cifar-10-batches-bin"
    shutil.copytree(os.path.join(datasets["cifar10-binary"], "cifar-10-batches-bin"), folder)
    raw = bytearray((folder / "test_batch.bin").read_bytes())
    raw[3073] = 12  # record 1's label
    (folder / "test_batch.bin").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"test_batch.bin: record 1 has label 12, outside \[0, 10\)"):
        load_cifar(str(tmp_path), "cifar10", "test")


def test_folder_without_cifar_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"data: no cifar100 files in {tmp_path}"):
        load_cifar(str(tmp_path), "cifar100", "train")


def test_coarse_labels_only_for_cifar100(datasets):
    with pytest.raises(ValueError, match=r"label must be 'fine' for cifar10, got 'coarse'"):
        load_cifar(datasets["cifar10-binary"], "cifar10", "train", "coarse")


# --- oversized binary files and pickles of the wrong dtypes ---------------------------------------------------

def _binary_folder(datasets, tmp_path):
    return _copied_folder(datasets, tmp_path, "binary")


def test_extra_bytes_in_a_binary_file_name_the_file_and_offset(datasets, tmp_path):
    folder = _binary_folder(datasets, tmp_path)
    raw = (folder / "data_batch_2.bin").read_bytes()
    (folder / "data_batch_2.bin").write_bytes(raw + b"\x00" * 10)
    with pytest.raises(ValueError, match=rf"data_batch_2.bin: truncated or oversized: {len(raw) + 10} bytes is not "
                                         rf"a whole number of 3073-byte records; the record at byte offset "
                                         rf"{len(raw)} is incomplete"):
        load_cifar(str(tmp_path), "cifar10", "train")


def test_more_records_than_the_official_file_is_refused(datasets, tmp_path):
    folder = _binary_folder(datasets, tmp_path)
    record = (folder / "test_batch.bin").read_bytes()[:3073]
    (folder / "test_batch.bin").write_bytes(record * 10001)
    with pytest.raises(ValueError, match=r"test_batch.bin: oversized: 10001 records, more than the official file's "
                                         r"10000; the bytes from offset 30730000 on are extra"):
        load_cifar(str(tmp_path), "cifar10", "test")
    (folder / "test_batch.bin").write_bytes(record * 10000)  # exactly the official size loads
    assert load_cifar(str(tmp_path), "cifar10", "test")[0].shape == (10000, 32, 32, 3)


@pytest.mark.parametrize("record, message", [
    ({b"data": np.zeros((4, 3072), np.float32), b"labels": [0] * 4},
     r"b'data' must be uint8 \(N, 3072\), got float32 \(4, 3072\)"),
    ({b"data": np.zeros((4, 3072), np.int64), b"labels": [0] * 4},
     r"b'data' must be uint8 \(N, 3072\), got int64 \(4, 3072\)"),
    ({b"data": [[0] * 3072] * 4, b"labels": [0] * 4}, r"b'data' must be uint8 \(N, 3072\), got list"),
    ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0.0, 1.0, 2.0, 3.0]}, r"b'labels' must be 4 integer labels"),
    ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [True, False, True, False]},
     r"b'labels' must be 4 integer labels"),
    ({b"data": np.zeros((4, 3072), np.uint8), b"labels": np.zeros(4, np.float64)},
     r"b'labels' must be 4 integer labels"),
    ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2]}, r"b'labels' must be 4 integer labels"),
], ids=["float32-data", "int64-data", "list-data", "float-labels", "bool-labels", "float-array-labels",
        "too-few-labels"])
def test_pickle_with_wrong_dtypes(datasets, tmp_path, record, message):
    folder = _python_folder(datasets, tmp_path)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(record, f, protocol=2)
    with pytest.raises(ValueError, match=rf"test_batch: {message}"):
        load_cifar(str(tmp_path), "cifar10", "test")


def test_empty_binary_file(datasets, tmp_path):
    folder = _binary_folder(datasets, tmp_path)
    (folder / "test_batch.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"test_batch.bin: the file is empty"):
        load_cifar(str(tmp_path), "cifar10", "test")
