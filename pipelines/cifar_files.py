"""Read CIFAR-10/100 into memory from the official binary files or torchvision's python pickles.

The python format is read through a restricted unpickler that admits only
what those files hold (dicts, lists, bytes, ints and numpy arrays), so a
pickle can never run code. Pickles written under numpy 1.x
(``numpy.core.multiarray``) and numpy 2.x (``numpy._core.multiarray``) both load.
"""
import importlib
import os
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

from gpumix.datasets import (
    CIFAR_COARSE_CLASSES,
    CIFAR_DATASETS,
    CIFAR_FILES,
    CIFAR_FOLDERS,
    CIFAR_FORMATS,
    CIFAR_IMAGE_BYTES,
    NUM_CLASSES,
)

__all__ = ["load_cifar", "detect_cifar_format", "RestrictedUnpickler"]

_BINARY = {name: CIFAR_FILES[(name, "binary")] for name in CIFAR_DATASETS}
_PYTHON = {name: CIFAR_FILES[(name, "python")] for name in CIFAR_DATASETS}
_SUBFOLDERS = {name: tuple(CIFAR_FOLDERS[(name, fmt)] for fmt in CIFAR_FORMATS) for name in CIFAR_DATASETS}
# Records in each official binary file ("*": every file not named): a file holds at most that many.
_RECORDS = {"cifar10": {"*": 10000}, "cifar100": {"train.bin": 50000, "*": 10000}}
_NUM_CLASSES = {("cifar10", "fine"): NUM_CLASSES["cifar10"], ("cifar100", "fine"): NUM_CLASSES["cifar100"],
                ("cifar100", "coarse"): CIFAR_COARSE_CLASSES}


def _reconstruct() -> Callable[..., Any]:
    # numpy's array-rebuilding function, by the name the pickles refer to it (numpy's own, private to it)
    try:
        module = importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy 1.x
        module = importlib.import_module("numpy.core.multiarray")
    return module._reconstruct


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(text, 'latin1').
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy's array-rebuilding globals (and latin-1 bytes); anything else is refused."""

    _ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
        ("_codecs", "encode"): lambda: _latin1_bytes,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        """The allowed global ``module.name``; UnpicklingError for any other."""
        factory = self._ALLOWED.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: CIFAR pickles hold only numpy arrays, lists and bytes")
        return factory()


def detect_cifar_format(data: str | os.PathLike[str], dataset: str) -> tuple[str, str]:
    """Return (format, folder): 'binary' or 'python', and the folder holding that dataset's files.

    ``data`` may be that folder itself or its parent (where the official archives extract).
    """
    if dataset not in _BINARY:
        raise ValueError(f"dataset must be 'cifar10' or 'cifar100', got {dataset!r}")
    data = os.fspath(data)
    if not os.path.isdir(data):
        raise FileNotFoundError(f"data: {data} is not a folder")
    for folder in (data, *(os.path.join(data, sub) for sub in _SUBFOLDERS[dataset])):
        for fmt, names in (("binary", _BINARY), ("python", _PYTHON)):
            if all(os.path.isfile(os.path.join(folder, n)) for n in names[dataset]["test"]):
                return fmt, folder
    wanted = ", ".join(_BINARY[dataset]["test"] + _PYTHON[dataset]["test"])
    raise FileNotFoundError(f"data: no {dataset} files in {data} or its {'/'.join(_SUBFOLDERS[dataset])} "
                            f"subfolders (looked for {wanted})")


def _read_binary(path: str, dataset: str, label: str) -> tuple[np.ndarray, np.ndarray]:
    record = CIFAR_IMAGE_BYTES + (1 if dataset == "cifar10" else 2)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0:
        raise ValueError(f"{path}: the file is empty")
    if raw.size % record:
        whole = raw.size // record
        raise ValueError(f"{path}: truncated or oversized: {raw.size} bytes is not a whole number of {record}-byte "
                         f"records; the record at byte offset {whole * record} is incomplete")
    rows = raw.reshape(-1, record)
    limit = _RECORDS[dataset].get(os.path.basename(path), _RECORDS[dataset]["*"])
    if len(rows) > limit:
        raise ValueError(f"{path}: oversized: {len(rows)} records, more than the official file's {limit}; "
                         f"the bytes from offset {limit * record} on are extra")
    labels = rows[:, 0] if dataset == "cifar10" or label == "coarse" else rows[:, 1]
    return rows[:, record - CIFAR_IMAGE_BYTES:], labels.astype(np.int32)


def _read_python(path: str, dataset: str, label: str) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        try:
            record = RestrictedUnpickler(f, encoding="bytes").load()
        except pickle.UnpicklingError as e:
            raise ValueError(f"{path}: {e}") from None
        except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
            raise ValueError(f"{path}: not a readable CIFAR pickle ({type(e).__name__}: {e})") from None
    key = b"labels" if dataset == "cifar10" else (b"coarse_labels" if label == "coarse" else b"fine_labels")
    if not isinstance(record, dict) or b"data" not in record or key not in record:
        found = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{path}: expected a dict with b'data' and {key!r}, got {found}")
    data = record[b"data"]
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
            or data.shape[1] != CIFAR_IMAGE_BYTES):
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: b'data' must be uint8 (N, {CIFAR_IMAGE_BYTES}), got {desc}")
    labels = record[key]
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != len(data) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels):
        raise ValueError(f"{path}: {key!r} must be {len(data)} integer labels")
    return data, np.asarray(labels, dtype=np.int32)


def load_cifar(data: str | os.PathLike[str], dataset: str = "cifar10", split: str = "train",
               label: str = "fine") -> tuple[np.ndarray, np.ndarray]:
    """Load one split into memory: uint8 images (N, 32, 32, 3) HWC and int32 labels (N,).

    ``label`` picks CIFAR-100's fine (100) or coarse (20) labels. The files are only read; the arrays are new.
    Errors name the file.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if label not in ("fine", "coarse") or (dataset == "cifar10" and label == "coarse"):
        allowed = "'fine' or 'coarse'" if dataset == "cifar100" else "'fine'"
        raise ValueError(f"label must be {allowed} for {dataset}, got {label!r}")
    fmt, folder = detect_cifar_format(data, dataset)
    names = (_BINARY if fmt == "binary" else _PYTHON)[dataset][split]
    read = _read_binary if fmt == "binary" else _read_python
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    for name in names:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"data: {path} is missing")
        x, y = read(path, dataset, label)
        classes = _NUM_CLASSES[(dataset, label)]
        bad = np.flatnonzero((y < 0) | (y >= classes))
        if bad.size:
            raise ValueError(f"{path}: record {bad[0]} has label {y[bad[0]]}, outside [0, {classes})")
        parts.append((x, y))
    images = np.concatenate([x for x, _ in parts]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.concatenate([y for _, y in parts])
