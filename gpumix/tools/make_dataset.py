"""``gpumix-make-dataset``: write a synthetic dataset in ImageNet, WebDataset or CIFAR format.

The command line of ``gpumix.synthetic.make_dataset`` (natural-image-like
JPEGs, about 400x350 at quality 90 by default; nothing partial left behind).

    gpumix-make-dataset --format imagenet --classes 10 --images-per-class 20 --output data/train
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gpumix.datasets import CIFAR_FORMATS
from gpumix.synthetic import DEFAULT_SIZE, FORMATS, make_dataset

__all__ = ["main"]


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must be HxW, like 350x400, got {text!r}") from None
    if h < 8 or w < 8:
        raise argparse.ArgumentTypeError(f"--size must be at least 8x8, got {text!r}")
    return h, w


def main(argv: Sequence[str] | None = None) -> int:
    """Write the dataset the flags describe; 0 on success, 1 if it cannot be written, 2 for bad flags."""
    p = argparse.ArgumentParser(prog="gpumix-make-dataset", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--images-per-class", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=_size, default=DEFAULT_SIZE, help="mean image size HxW (ImageNet formats)")
    p.add_argument("--cifar-format", choices=CIFAR_FORMATS, default="binary",
                   help="official binary files or torchvision's python pickles")
    p.add_argument("--output", required=True, help="folder to create (must not exist, or be empty)")
    args = p.parse_args(argv)
    try:
        out = make_dataset(args.format, args.output, classes=args.classes, images_per_class=args.images_per_class,
                           seed=args.seed, size=args.size, cifar_format=args.cifar_format)
    except (ValueError, OSError) as e:
        print(f"gpumix-make-dataset: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.classes * args.images_per_class} {args.format} images to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
