"""DALI pipelines of gpumix, installed as ``gpumix.pipelines``.

Each builder returns an unbuilt DALI ``Pipeline`` whose outputs are uint8 HWC
images of one fixed size and int32 labels, with checkpointing on and its
reader (or, for CIFAR and WebDataset shards, the source gpumix feeds it,
``sharding.ShardedSource``) named ``"Reader"``. Importing this package
imports nvidia.dali. A file DALI cannot read or decode stops a run with a
``DatasetFileError`` (a RuntimeError) that names it. ``DecoderConfig`` holds
the GPU decoder's knobs; ``file_list`` reads and writes DALI file lists.
"""
try:
    import nvidia.dali  # noqa: F401
except ImportError as e:  # DALI is the cuda13 or cuda12 extra: say which to install
    raise ImportError("gpumix.pipelines needs NVIDIA DALI: pip install 'gpumix[cuda13]' (CUDA 13 drivers, the torch "
                      "PyPI serves) or 'gpumix[cuda12]' (CUDA 12 drivers)") from e

from gpumix.pipelines._common import READER_NAME, reader_meta  # noqa: E402
from gpumix.pipelines._failures import DatasetFileError  # noqa: E402
from gpumix.pipelines.auto_augment import AutoAugment, AutoAugmentPolicy  # noqa: E402
from gpumix.pipelines.cifar import cifar_train, cifar_val  # noqa: E402
from gpumix.pipelines.decoder import DecoderConfig  # noqa: E402
from gpumix.pipelines.imagenet import imagenet_train, imagenet_val  # noqa: E402

__all__ = ["imagenet_train", "imagenet_val", "cifar_train", "cifar_val", "reader_meta", "READER_NAME",
           "DatasetFileError", "DecoderConfig", "AutoAugment", "AutoAugmentPolicy"]
