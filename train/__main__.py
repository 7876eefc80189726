"""``python -m gpumix.train`` / ``gpumix-train``: train an image classifier on gpumix's mixed batches.

    torchrun --nproc_per_node=8 -m gpumix.train --recipe imagenet-resnet50-mixup --data /data/imagenet
    gpumix-train --recipe cifar10-preactresnet18-mixup --data /data/cifar --device cpu
"""
import pickle
import sys

from gpumix.train.config import parse_config

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(argv)
    # Imported after parsing, so that --help and flag errors answer without loading DALI or torch models.
    from gpumix.pipelines import DatasetFileError
    from gpumix.train.loop import NonFiniteLoss, train
    try:
        train(cfg)
    except (ValueError, TypeError, OSError, ImportError, NonFiniteLoss, DatasetFileError,
            pickle.UnpicklingError) as error:  # an untrusted checkpoint refused by weights_only loading
        print(f"gpumix-train: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
