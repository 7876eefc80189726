"""The CIFAR-10 binary writer and command-line plumbing shared by the dataset tools (gpumix-make-digits,
gpumix-make-fashion).

One record is 1 label byte and 3072 pixel bytes: the R, G and B planes of a
32x32 image, row-major, as in the official ``cifar-10-batches-bin`` archive,
which ``gpumix.pipelines.cifar_files`` and the trainer's CIFAR pipelines read.
"""
import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable

import numpy as np

from gpumix.datasets import CIFAR_FILES, CIFAR_FOLDERS, CIFAR_IMAGE_BYTES, CIFAR_SIZE
from gpumix.datasets import NUM_CLASSES as DATASET_CLASSES
from gpumix.validation import check_float

__all__ = ["FOLDER", "TRAIN_FILES", "NUM_CLASSES", "SIZE", "RECORD_BYTES", "corrupt_labels", "write_cifar10",
           "new_folder", "grey_rows", "add_corruption_arguments", "run_tool"]

# the official CIFAR-10 binary layout (gpumix.datasets, which gpumix.pipelines.cifar_files reads by)
FOLDER = CIFAR_FOLDERS[("cifar10", "binary")]
_FILES = CIFAR_FILES[("cifar10", "binary")]
TRAIN_FILES = len(_FILES["train"])
NUM_CLASSES = DATASET_CLASSES["cifar10"]
SIZE = CIFAR_SIZE
RECORD_BYTES = 1 + CIFAR_IMAGE_BYTES


def new_folder(out_dir: str | os.PathLike[str], argument: str = "out_dir") -> str:
    """The path of ``out_dir/cifar-10-batches-bin``; FileExistsError naming ``argument`` if it already exists.

    The tools call it before loading anything, so an existing dataset is refused at once.
    """
    target = os.path.join(os.fspath(out_dir), FOLDER)
    if os.path.exists(target):
        raise FileExistsError(f"{argument}: {target} already exists")
    return target


def grey_rows(images: np.ndarray) -> np.ndarray:
    """uint8 grey images ``(N, 32, 32)`` -> uint8 CIFAR pixel rows ``(N, 3072)``: the plane repeated as R, G, B.

    ``images`` is not modified; the rows are a new array.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != (SIZE, SIZE):
        raise ValueError(f"images must be uint8 (N, {SIZE}, {SIZE}), got {images.dtype} {images.shape}")
    return np.repeat(images.reshape(len(images), 1, SIZE * SIZE), 3, axis=1).reshape(len(images), -1)


def corrupt_labels(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of int ``labels (N,)`` with ``round(N * fraction)`` of them, chosen without replacement by ``rng``
    (a ``numpy.random.Generator``), redrawn uniformly from 0..9 (so about 9/10 of them change), as in the mixup
    paper's corrupted-label experiment. ``labels`` is not modified. ``fraction`` in [0, 1]."""
    fraction = check_float("corrupt_fraction", fraction, 0.0, 1.0)
    out = np.array(labels, dtype=np.int64, copy=True)
    n_corrupt = round(len(out) * fraction)
    if n_corrupt:
        chosen = rng.choice(len(out), size=n_corrupt, replace=False)
        out[chosen] = rng.integers(0, NUM_CLASSES, size=n_corrupt)
    return out


def _records(labels: np.ndarray, rows: np.ndarray, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    rows = np.asarray(rows)
    if rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != RECORD_BYTES - 1:
        raise ValueError(f"{name}_rows must be uint8 (N, {RECORD_BYTES - 1}), got {rows.dtype} {rows.shape}")
    if labels.shape != (len(rows),):
        raise ValueError(f"{name}_labels must be ({len(rows)},), got shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"{name}_labels must be in 0..{NUM_CLASSES - 1}, got {labels.min()}..{labels.max()}")
    return np.concatenate([labels.astype(np.uint8)[:, None], rows], axis=1)


def write_cifar10(out_dir: str | os.PathLike[str], train_labels: np.ndarray, train_rows: np.ndarray,
                  test_labels: np.ndarray, test_rows: np.ndarray, *, prefix: str = ".gpumix-cifar-") -> str:
    """Write ``out_dir/cifar-10-batches-bin/`` (data_batch_1..5.bin, test_batch.bin, batches.meta.txt).

    ``*_rows``: uint8 (N, 3072) records' pixels (R, G, B planes of 32x32),
    ``*_labels``: ints (N,) in 0..9, in the order they are written; the training
    records are split in order over the five files. Nothing is modified. The
    folder is written under a temporary name (``prefix``...) and renamed at the
    end, so it appears whole or not at all; an existing one is refused with
    FileExistsError. Returns the folder's path.
    """
    out_dir = os.fspath(out_dir)
    target = new_folder(out_dir)
    train = _records(train_labels, train_rows, "train")
    test = _records(test_labels, test_rows, "test")
    os.makedirs(out_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=prefix, dir=out_dir)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would stick to the folder
        for name, idx in zip(_FILES["train"], np.array_split(np.arange(len(train)), TRAIN_FILES)):
            train[idx].tofile(os.path.join(staging, name))
        test.tofile(os.path.join(staging, _FILES["test"][0]))
        with open(os.path.join(staging, "batches.meta.txt"), "w", encoding="ascii") as f:
            f.write("".join(f"{k}\n" for k in range(NUM_CLASSES)))
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def add_corruption_arguments(parser: argparse.ArgumentParser, *, seed_help: str | None = None) -> None:
    """Add the tools' common ``--seed`` (default 0) and ``--corrupt-fraction`` (default 0) options to ``parser``."""
    parser.add_argument("--seed", type=int, default=0, help=seed_help)
    parser.add_argument("--corrupt-fraction", type=float, default=0.0,
                        help="share of training labels redrawn uniformly at random (default: 0)")


def run_tool(prog: str, make: Callable[[], str],
             errors: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError)) -> int:
    """Run a tool's ``make()``: print the path it returns and return 0, or print ``prog: error: ...`` for one of
    ``errors`` to stderr and return 1 (the tools' ``main`` exit status)."""
    try:
        out = make()
    except errors as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0
