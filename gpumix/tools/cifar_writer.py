"""The CIFAR-10 binary writer shared by the dataset tools (gpumix-make-digits, gpumix-make-fashion).

One record is 1 label byte and 3072 pixel bytes: the R, G and B planes of a
32x32 image, row-major, as in the official ``cifar-10-batches-bin`` archive,
which ``gpumix.pipelines.cifar_files`` and the trainer's CIFAR pipelines read.
"""
import os
import shutil
import tempfile

import numpy as np

from gpumix.validation import check_float

__all__ = ["FOLDER", "TRAIN_FILES", "NUM_CLASSES", "SIZE", "RECORD_BYTES", "corrupt_labels", "write_cifar10"]

FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = 5  # data_batch_1..5.bin, as in the official archive (gpumix.pipelines.cifar_files reads all five)
NUM_CLASSES = 10
SIZE = 32
RECORD_BYTES = 1 + 3 * SIZE * SIZE


def corrupt_labels(labels, fraction, rng):
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


def _records(labels, rows, name):
    labels = np.asarray(labels)
    rows = np.asarray(rows)
    if rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != RECORD_BYTES - 1:
        raise ValueError(f"{name}_rows must be uint8 (N, {RECORD_BYTES - 1}), got {rows.dtype} {rows.shape}")
    if labels.shape != (len(rows),):
        raise ValueError(f"{name}_labels must be ({len(rows)},), got shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"{name}_labels must be in 0..{NUM_CLASSES - 1}, got {labels.min()}..{labels.max()}")
    return np.concatenate([labels.astype(np.uint8)[:, None], rows], axis=1)


def write_cifar10(out_dir, train_labels, train_rows, test_labels, test_rows, *, prefix=".gpumix-cifar-"):
    """Write ``out_dir/cifar-10-batches-bin/`` (data_batch_1..5.bin, test_batch.bin, batches.meta.txt).

    ``*_rows``: uint8 (N, 3072) records' pixels (R, G, B planes of 32x32),
    ``*_labels``: ints (N,) in 0..9, in the order they are written; the training
    records are split in order over the five files. Nothing is modified. The
    folder is written under a temporary name (``prefix``...) and renamed at the
    end, so it appears whole or not at all; an existing one is refused with
    FileExistsError. Returns the folder's path.
    """
    out_dir = os.fspath(out_dir)
    target = os.path.join(out_dir, FOLDER)
    if os.path.exists(target):
        raise FileExistsError(f"out_dir: {target} already exists")
    train = _records(train_labels, train_rows, "train")
    test = _records(test_labels, test_rows, "test")
    os.makedirs(out_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=prefix, dir=out_dir)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would stick to the folder
        for k, idx in enumerate(np.array_split(np.arange(len(train)), TRAIN_FILES)):
            train[idx].tofile(os.path.join(staging, f"data_batch_{k + 1}.bin"))
        test.tofile(os.path.join(staging, "test_batch.bin"))
        with open(os.path.join(staging, "batches.meta.txt"), "w", encoding="ascii") as f:
            f.write("".join(f"{k}\n" for k in range(NUM_CLASSES)))
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
