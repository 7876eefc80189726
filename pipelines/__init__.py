"""DALI pipelines of gpumix, installed as ``gpumix.pipelines``.

Each builder returns an unbuilt DALI ``Pipeline`` whose outputs are uint8 HWC
images of one fixed size and int32 labels, with checkpointing on and its
reader (or, for CIFAR and WebDataset shards, the source gpumix feeds it,
``sharding.ShardedSource``) named ``"Reader"``. Importing this package
imports nvidia.dali. A file DALI cannot read or decode stops a run with a
``DatasetFileError`` (a RuntimeError) that names it. ``DecoderConfig`` holds
the GPU decoder's knobs; ``file_list`` reads and writes DALI file lists.
"""
from gpumix.pipelines._common import READER_NAME, reader_meta
from gpumix.pipelines._failures import DatasetFileError
from gpumix.pipelines.cifar import cifar_train, cifar_val
from gpumix.pipelines.decoder import DecoderConfig
from gpumix.pipelines.imagenet import imagenet_train, imagenet_val

__all__ = ["imagenet_train", "imagenet_val", "cifar_train", "cifar_val", "reader_meta", "READER_NAME",
           "DatasetFileError", "DecoderConfig"]
