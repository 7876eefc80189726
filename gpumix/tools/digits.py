"""``gpumix-make-digits``: scikit-learn's 8x8 digits as a small CIFAR-10-format dataset, optionally label-corrupted.

The 1797 digits (no download: they ship inside scikit-learn) are upsampled to
32x32 by nearest neighbour (each pixel becomes a 4x4 block), scaled from 0..16
to 0..255 and copied to the three colour planes, split into train and test with
a seeded permutation, and written in the official CIFAR-10 binary layout. With
``--corrupt-fraction F`` a fraction F of the training labels is replaced by
labels drawn uniformly from the 10 classes (so about 9/10 of them change), as
in the mixup paper's corrupted-label experiment; test labels are never changed.

    gpumix-make-digits data/digits --corrupt-fraction 0.5
"""
import argparse
import os

import numpy as np

from gpumix.tools.cifar_writer import (
    FOLDER,
    SIZE,
    TRAIN_FILES,
    add_corruption_arguments,
    corrupt_labels,
    grey_rows,
    new_folder,
    run_tool,
    write_cifar10,
)
from gpumix.validation import check_float, check_int

__all__ = ["make_digits", "main", "FOLDER", "TRAIN_FILES"]


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("make_digits needs scikit-learn: pip install gpumix[digits]") from None
    digits = load_digits()
    return np.asarray(digits.images, dtype=np.float64), np.asarray(digits.target, dtype=np.int64)


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """float (N, 8, 8) in 0..16 -> uint8 (N, 3072): 32x32 nearest upsampling, R, G and B planes row-major."""
    import torch
    import torch.nn.functional as F

    big = F.interpolate(torch.from_numpy(images)[:, None], size=(SIZE, SIZE), mode="nearest")[:, 0].numpy()
    return grey_rows(np.clip(np.rint(big * (255.0 / 16.0)), 0, 255).astype(np.uint8))


def make_digits(out_dir: str | os.PathLike[str], *, seed: int = 0, test_fraction: float = 0.25,
                corrupt_fraction: float = 0.0) -> str:
    """Write ``out_dir/cifar-10-batches-bin/`` (data_batch_1..5.bin, test_batch.bin, batches.meta.txt).

    Each record is 1 label byte and 3072 pixel bytes (R, G, B planes of 32x32).
    ``test_fraction`` in (0, 1) of the 1797 digits go to the test file;
    ``corrupt_fraction`` in [0, 1] of the training labels are redrawn uniformly
    from 0..9. Everything depends only on ``seed``. The folder is written under
    a temporary name and renamed at the end; an existing one is refused.
    Returns ``out_dir``.
    """
    out_dir = os.fspath(out_dir)
    seed = check_int("seed", seed, 0)
    test_fraction = check_float("test_fraction", test_fraction, 0.0, 1.0, high_open=True)
    if test_fraction == 0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    corrupt_fraction = check_float("corrupt_fraction", corrupt_fraction, 0.0, 1.0)
    new_folder(out_dir)
    images, labels = _load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    n_test = min(max(1, round(len(images) * test_fraction)), len(images) - 1)
    test, train = order[:n_test], order[n_test:]
    train_labels = corrupt_labels(labels[train], corrupt_fraction, rng)
    rows = _cifar_rows(images)
    write_cifar10(out_dir, train_labels, rows[train], labels[test], rows[test], prefix=".gpumix-digits-")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """The command line: prints the dataset's folder and returns 0, or prints the error and returns 1."""
    p = argparse.ArgumentParser(prog="gpumix-make-digits", description=(__doc__ or "").splitlines()[0])
    p.add_argument("out", help="folder to write cifar-10-batches-bin/ into")
    p.add_argument("--test-fraction", type=float, default=0.25, help="share of the digits in the test file")
    add_corruption_arguments(p)
    args = p.parse_args(argv)
    return run_tool("gpumix-make-digits",
                    lambda: make_digits(args.out, seed=args.seed, test_fraction=args.test_fraction,
                                        corrupt_fraction=args.corrupt_fraction),
                    (ValueError, TypeError, OSError, ImportError))


if __name__ == "__main__":
    raise SystemExit(main())
