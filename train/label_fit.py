"""``gpumix-label-fit``: how far a trained CIFAR-format model fits corrupted training labels.

For the mixup paper's corrupted-label experiment (Table 2). Given a run's
checkpoint, the label-corrupted training set it was trained on (``--noisy``)
and the same images with their true labels (``--clean``, for example
``gpumix-make-digits`` with the same ``--seed`` and no corruption), it
classifies every training image once, unaugmented, in float32 eval mode, and
reports:

- ``fits_noise``: among the corrupted samples (noisy label != true label), the
  share predicted as the noisy label: memorized noise;
- ``true_on_corrupted``: among them, the share predicted as the true label;
- ``train_clean_accuracy``: accuracy on the uncorrupted samples;
- ``test_accuracy``: accuracy on the clean test split.

    gpumix-label-fit runs/noisy-erm/checkpoint.pt --noisy noisy --clean clean
"""
import argparse
import json
import os
import pickle
import sys
from typing import Any

import numpy as np

__all__ = ["label_fit", "main"]


def _predict(model: Any, images: np.ndarray, mean: tuple, std: tuple, batch_size: int = 256) -> np.ndarray:
    """Argmax class of uint8 (N, 32, 32, 3) HWC images, normalized by gpumix.normalize as in training; int64 (N,)."""
    import torch

    from gpumix.ops import normalize

    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = normalize(torch.from_numpy(images[start:start + batch_size]), mean=mean, std=std)
            out.append(model(x).argmax(1))
    return torch.cat(out).numpy()


def label_fit(checkpoint: str | os.PathLike, noisy: str | os.PathLike, clean: str | os.PathLike) -> dict:
    """The fractions above as a dict, plus the sample counts; ``checkpoint`` is loaded with weights_only=True.

    ``noisy`` and ``clean`` are CIFAR-format folders holding the same training
    images in the same order (a ValueError says otherwise); nothing is modified.
    """
    from gpumix.datasets import STATS
    from gpumix.pipelines.cifar_files import load_cifar
    from gpumix.train.checkpoint import load_trained_model

    trained = load_trained_model(checkpoint, "gpumix-label-fit")
    dataset = trained.dataset
    images, noisy_labels = load_cifar(noisy, dataset, "train")
    clean_images, true_labels = load_cifar(clean, dataset, "train")
    if images.shape != clean_images.shape or not np.array_equal(images, clean_images):
        raise ValueError(f"noisy: {noisy} and clean: {clean} do not hold the same training images in the same order")
    test_images, test_labels = load_cifar(clean, dataset, "test")

    model = trained.model
    mean, std = STATS[dataset].mean, STATS[dataset].std
    predicted = _predict(model, images, mean, std)
    corrupted = noisy_labels != true_labels
    n_corrupted, n_kept = int(corrupted.sum()), int((~corrupted).sum())

    def share(hits, total):
        return float(hits) / total if total else float("nan")

    return {
        "checkpoint": str(checkpoint), "step": trained.step, "train_samples": len(images),
        "corrupted": n_corrupted,
        "fits_noise": share((predicted[corrupted] == noisy_labels[corrupted]).sum(), n_corrupted),
        "true_on_corrupted": share((predicted[corrupted] == true_labels[corrupted]).sum(), n_corrupted),
        "train_clean_accuracy": share((predicted[~corrupted] == true_labels[~corrupted]).sum(), n_kept),
        "test_accuracy": share((_predict(model, test_images, mean, std) == test_labels).sum(), len(test_labels)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpumix-label-fit", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a gpumix-train checkpoint.pt")
    parser.add_argument("--noisy", required=True, help="the label-corrupted CIFAR-format folder the run trained on")
    parser.add_argument("--clean", required=True, help="the same images with their true labels")
    args = parser.parse_args(argv)
    try:
        result = label_fit(args.checkpoint, args.noisy, args.clean)
    except (ValueError, TypeError, OSError, pickle.UnpicklingError) as e:  # pickle: weights_only refusal
        print(f"gpumix-label-fit: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
