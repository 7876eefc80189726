"""CIFAR-10/100 DALI pipelines: the dataset held in memory, fed to DALI sample by sample.

The source (a ``sharding.ShardedSource``) behaves like a DALI reader with
``pad_last_batch=True``: epoch ``e`` of shard ``s`` is the shard's slice of
one permutation drawn from ``(seed, e)``, its last batch padded with its last
sample, and epochs follow each other without a break. The pipeline's
``reader_meta("Reader")`` reports the same numbers a DALI reader would, so
DALI's iterators (and gpumix's) find the epoch size by the reader's name,
drop the padding and count epochs.
"""
import os

import numpy as np
from nvidia.dali import fn, types
from nvidia.dali.data_node import DataNode

from gpumix.datasets import existing_path
from gpumix.pipelines._common import pipeline_settings
from gpumix.pipelines.auto_augment import AutoAugment, AutoAugmentPolicy, apply_auto_augment, auto_augment_config
from gpumix.pipelines.cifar_files import load_cifar
from gpumix.pipelines.dali_compat import build_graph
from gpumix.pipelines.sharding import ShardedSource, SourcePipeline

__all__ = ["cifar_train", "cifar_val", "ShardSource", "InMemoryPipeline", "PAD", "SIZE", "CROP_POSITIONS"]

PAD = 4  # pixels of zero padding before the random 32x32 crop (He et al., 2016)
SIZE = 32
# The random crop's position, as a fraction of the 2*PAD slack: PAD*2+1 equally likely integer offsets.
CROP_POSITIONS = [k / (2 * PAD) for k in range(2 * PAD + 1)]


class ShardSource(ShardedSource):
    """Per-sample ``external_source`` callback over an in-memory dataset (``ShardedSource``'s sharding)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, batch_size: int, shard_id: int, num_shards: int,
                 seed: int, shuffle: bool) -> None:
        """images: uint8 (N, H, W, C) HWC; labels: int32 (N,). Kept by reference, never modified."""
        super().__init__(len(images), batch_size=batch_size, shard_id=shard_id, num_shards=num_shards)
        self.images, self.labels = images, labels
        self.seed, self.shuffle = seed, shuffle
        self._epoch: int | None = None
        self._order = np.arange(0)

    def order(self, epoch: int) -> np.ndarray:
        """Sample indices of ``epoch``, the same on every shard."""
        if epoch != self._epoch:
            n = len(self.images)
            rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(epoch,)))
            self._order = rng.permutation(n) if self.shuffle else np.arange(n)
            self._epoch = epoch
        return self._order

    def sample(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``i``: its uint8 (H, W, C) image and its int32 (1,) label (views of the dataset)."""
        return self.images[i], self.labels[i:i + 1]


# The pipeline class of the CIFAR builders (its old name)
InMemoryPipeline = SourcePipeline


def _cifar(source: ShardSource, train: bool, device: str,
           augment: AutoAugment | None = None) -> tuple[DataNode, DataNode]:
    images, labels = fn.external_source(source=source, num_outputs=2, batch=False, layout=["HWC", ""],
                                        dtype=[types.DALIDataType.UINT8, types.DALIDataType.INT32])
    labels = fn.reshape(labels, shape=[])  # scalar labels, as readers emit with their own reshape
    if device == "gpu":
        images = images.gpu()
    if train:
        images = fn.crop(images, crop=(SIZE + 2 * PAD, SIZE + 2 * PAD), out_of_bounds_policy="pad", fill_values=0)
        images = fn.crop(images, crop=(SIZE, SIZE),
                         crop_pos_x=fn.random.uniform(values=CROP_POSITIONS),
                         crop_pos_y=fn.random.uniform(values=CROP_POSITIONS))
        images = fn.flip(images, horizontal=fn.random.coin_flip(probability=0.5))
        if augment is not None:  # after the crop and flip, as for ImageNet
            images = apply_auto_augment(images, augment, (SIZE, SIZE), cifar=True)
    return images, labels


def _build(data: str | os.PathLike[str], train: bool, *, batch_size: int, dataset: str, label: str, device: str,
           device_id: int, shard_id: int, num_shards: int, seed: int, num_threads: int, checkpoint: str | bytes | None,
           prefetch_queue_depth: int,
           auto_augment: AutoAugment | AutoAugmentPolicy | str | None = None) -> SourcePipeline:
    augment = auto_augment_config(auto_augment)
    device, kwargs = pipeline_settings(batch_size=batch_size, device=device, device_id=device_id, shard_id=shard_id,
                                       num_shards=num_shards, seed=seed, num_threads=num_threads,
                                       checkpoint=checkpoint, prefetch_queue_depth=prefetch_queue_depth)
    images, labels = load_cifar(existing_path("data", data), dataset, "train" if train else "test", label)
    source = ShardSource(images, labels, batch_size=batch_size, shard_id=shard_id, num_shards=num_shards,
                         seed=seed, shuffle=train)
    pipe = SourcePipeline(reader_meta=source.meta(), **kwargs)
    return build_graph(pipe, _cifar, source, train, device, augment, enable_conditionals=augment is not None)


def cifar_train(data: str | os.PathLike[str], *, batch_size: int, dataset: str = "cifar10", label: str = "fine",
                device: str = "auto", device_id: int = 0, shard_id: int = 0, num_shards: int = 1, seed: int = 0,
                num_threads: int = 4, checkpoint: str | bytes | None = None, prefetch_queue_depth: int = 2,
                auto_augment: AutoAugment | AutoAugmentPolicy | str | None = None) -> SourcePipeline:
    """CIFAR training pipeline: pad 4, random 32x32 crop, random horizontal flip.

    ``data`` is the folder of the extracted official binary or python files (or
    their parent). Outputs uint8 (32, 32, 3) HWC images and int32 labels;
    ``label`` picks CIFAR-100's fine or coarse labels. Returns an unbuilt DALI
    ``Pipeline`` with checkpointing on (``checkpoint=`` resumes). ``auto_augment``
    is ``imagenet_train``'s, after the flip (AutoAugment uses its reduced CIFAR-10 policy).
    """
    return _build(data, True, batch_size=batch_size, dataset=dataset, label=label, device=device,
                  device_id=device_id, shard_id=shard_id, num_shards=num_shards, seed=seed,
                  num_threads=num_threads, checkpoint=checkpoint, prefetch_queue_depth=prefetch_queue_depth,
                  auto_augment=auto_augment)


def cifar_val(data: str | os.PathLike[str], *, batch_size: int, dataset: str = "cifar10", label: str = "fine",
              device: str = "auto", device_id: int = 0, shard_id: int = 0, num_shards: int = 1, seed: int = 0,
              num_threads: int = 4, checkpoint: str | bytes | None = None,
              prefetch_queue_depth: int = 2) -> SourcePipeline:
    """CIFAR test-split pipeline: no augmentation, no shuffling; outputs as ``cifar_train``."""
    return _build(data, False, batch_size=batch_size, dataset=dataset, label=label, device=device,
                  device_id=device_id, shard_id=shard_id, num_shards=num_shards, seed=seed,
                  num_threads=num_threads, checkpoint=checkpoint, prefetch_queue_depth=prefetch_queue_depth)
