"""``gpumix-make-fashion``: a class-balanced Fashion-MNIST training subset and the full test set in CIFAR-10 format.

Reads the four IDX files of Fashion-MNIST (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each gzipped ``.gz`` or plain), as Debian's
``dataset-fashion-mnist`` package installs them in
``/usr/share/datasets/fashion-mnist``. Each 28x28 grey image is padded with 2
black pixels on every side to 32x32 and copied to the three colour planes;
``--per-class N`` training images of each class are drawn with a seeded
generator (default: all 6,000), and the 10,000 test images are written in
their original order (``--test-per-class M``: only the first M of each class,
still in their original order, for machines where evaluating 10,000 images
every epoch costs too much). With ``--corrupt-fraction F`` a fraction F of the
training labels is redrawn uniformly from the 10 classes, as in the mixup
paper's corrupted-label experiment; test labels are never changed.

    gpumix-make-fashion --idx-dir /usr/share/datasets/fashion-mnist --output data/fashion --per-class 200
"""
import argparse
import gzip
import os
import zlib

import numpy as np

from gpumix.tools.cifar_writer import (
    NUM_CLASSES,
    SIZE,
    add_corruption_arguments,
    corrupt_labels,
    grey_rows,
    new_folder,
    run_tool,
    write_cifar10,
)
from gpumix.validation import check_float, check_int

__all__ = ["make_fashion", "read_idx", "main", "DEFAULT_IDX_DIR", "PACKAGE", "IDX_FILES", "SIDE"]

DEFAULT_IDX_DIR = "/usr/share/datasets/fashion-mnist"
PACKAGE = "dataset-fashion-mnist"
IDX_FILES = {("train", "images"): "train-images-idx3-ubyte", ("train", "labels"): "train-labels-idx1-ubyte",
             ("test", "images"): "t10k-images-idx3-ubyte", ("test", "labels"): "t10k-labels-idx1-ubyte"}
SIDE = 28
_UBYTE = 0x08


def _idx_path(idx_dir: str, name: str) -> str:
    for candidate in (name + ".gz", name):
        path = os.path.join(idx_dir, candidate)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"idx_dir: {os.path.join(idx_dir, name)}.gz (or {name}) is missing from {idx_dir}")


def read_idx(path: str | os.PathLike[str], ndim: int) -> np.ndarray:
    """The uint8 array in an IDX file (gzipped when the name ends in ``.gz``) of ``ndim`` dimensions.

    The array is a read-only view of the file's bytes, shaped as its header says.

    A ValueError naming ``path`` says what is wrong with a malformed file (bad
    gzip stream, magic number, element type, dimension count, or a size that
    does not match its header).
    """
    path = os.fspath(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            with open(path, "rb") as f:
                raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable gzip IDX file ({e})") from None
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: {len(raw)} bytes, shorter than an IDX header with {ndim} dimensions")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (magic number starts with {raw[0]:#04x} {raw[1]:#04x}, "
                         f"expected 0x00 0x00)")
    if raw[2] != _UBYTE:
        raise ValueError(f"{path}: element type {raw[2]:#04x}, expected unsigned bytes (0x08)")
    if raw[3] != ndim:
        raise ValueError(f"{path}: {raw[3]} dimensions, expected {ndim}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    body = len(raw) - 4 - 4 * ndim
    expected = int(np.prod(shape, dtype=np.int64))
    if body != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes of data), the file holds {body}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _load_split(idx_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = _idx_path(idx_dir, IDX_FILES[(split, "images")])
    labels_path = _idx_path(idx_dir, IDX_FILES[(split, "labels")])
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if images.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, expected {SIDE}x{SIDE}")
    if len(images) != len(labels):
        raise ValueError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path}")
    if len(labels) and labels.max() >= NUM_CLASSES:
        bad = int(np.flatnonzero(labels >= NUM_CLASSES)[0])
        raise ValueError(f"{labels_path}: label {labels[bad]} at index {bad}, expected 0..{NUM_CLASSES - 1}")
    return images, labels.astype(np.int64)


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> uint8 (N, 3072): padded with 2 black pixels a side, the plane repeated as R, G, B."""
    pad = (SIZE - SIDE) // 2
    return grey_rows(np.pad(images, ((0, 0), (pad, pad), (pad, pad))))


def make_fashion(idx_dir: str | os.PathLike[str], output: str | os.PathLike[str], *, per_class: int | None = None,
                 corrupt_fraction: float = 0.0, seed: int = 0, test_per_class: int | None = None) -> str:
    """Write ``output/cifar-10-batches-bin/`` from the Fashion-MNIST IDX files in ``idx_dir``; returns ``output``.

    Training set: ``per_class`` images of each class (None: all of them),
    chosen without replacement by ``numpy.random.default_rng(seed)`` and written
    in a seeded shuffled order; then ``corrupt_fraction`` in [0, 1] of their
    labels are redrawn uniformly (``gpumix.tools.cifar_writer.corrupt_labels``).
    Test set: all test images in order with their true labels, or, with
    ``test_per_class``, the first ``test_per_class`` of each class (in their
    original order; no randomness). The IDX files are only
    read. FileNotFoundError names the missing folder (and the Debian package
    that provides it) or file; ValueError names a malformed file.
    """
    idx_dir = os.fspath(idx_dir)
    output = os.fspath(output)
    per_class = None if per_class is None else check_int("per_class", per_class, 1)
    corrupt_fraction = check_float("corrupt_fraction", corrupt_fraction, 0.0, 1.0)
    seed = check_int("seed", seed, 0)
    test_per_class = None if test_per_class is None else check_int("test_per_class", test_per_class, 1)
    if not os.path.isdir(idx_dir):
        raise FileNotFoundError(f"idx_dir: {idx_dir} is not a folder; the Fashion-MNIST IDX files come with "
                                f"Debian's {PACKAGE} package (apt-get install {PACKAGE}), which puts them in "
                                f"{DEFAULT_IDX_DIR}")
    new_folder(output, "output")
    train_images, train_labels = _load_split(idx_dir, "train")
    test_images, test_labels = _load_split(idx_dir, "test")
    rng = np.random.default_rng(seed)
    chosen = []
    for k in range(NUM_CLASSES):
        members = np.flatnonzero(train_labels == k)
        if per_class is None:
            chosen.append(members)
            continue
        if len(members) < per_class:
            raise ValueError(f"per_class: {per_class} images of class {k} asked for, the training set "
                             f"({_idx_path(idx_dir, IDX_FILES[('train', 'labels')])}) has {len(members)}")
        chosen.append(rng.choice(members, size=per_class, replace=False))
    subset = rng.permutation(np.concatenate(chosen))
    labels = corrupt_labels(train_labels[subset], corrupt_fraction, rng)
    if test_per_class is not None:
        kept = [np.flatnonzero(test_labels == k)[:test_per_class] for k in range(NUM_CLASSES)]
        short = [k for k in range(NUM_CLASSES) if len(kept[k]) < test_per_class]
        if short:
            path = _idx_path(idx_dir, IDX_FILES[("test", "labels")])
            raise ValueError(f"test_per_class: {test_per_class} test images of class {short[0]} asked for, "
                             f"{path} has {len(kept[short[0]])}")
        order = np.sort(np.concatenate(kept))
        test_images, test_labels = test_images[order], test_labels[order]
    write_cifar10(output, labels, _cifar_rows(train_images[subset]), test_labels, _cifar_rows(test_images),
                  prefix=".gpumix-fashion-")
    return output


def main(argv: list[str] | None = None) -> int:
    """The command line: prints the dataset's folder and returns 0, or prints the error and returns 1."""
    p = argparse.ArgumentParser(prog="gpumix-make-fashion", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--idx-dir", default=DEFAULT_IDX_DIR,
                   help=f"folder of the four Fashion-MNIST IDX files (default: {DEFAULT_IDX_DIR}, "
                        f"from apt-get install {PACKAGE})")
    p.add_argument("--output", required=True, help="folder to write cifar-10-batches-bin/ into")
    p.add_argument("--per-class", type=int, default=None,
                   help="training images per class, drawn at random (default: all 6,000)")
    p.add_argument("--test-per-class", type=int, default=None,
                   help="write only the first N test images of each class (default: all 10,000 test images)")
    add_corruption_arguments(p, seed_help="seed of the subset, its order and the corruption")
    args = p.parse_args(argv)
    return run_tool("gpumix-make-fashion",
                    lambda: make_fashion(args.idx_dir, args.output, per_class=args.per_class,
                                         corrupt_fraction=args.corrupt_fraction, seed=args.seed,
                                         test_per_class=args.test_per_class))


if __name__ == "__main__":
    raise SystemExit(main())
