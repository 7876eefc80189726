"""Argument checks and settings shared by every gpumix DALI pipeline."""

from typing import Any

from nvidia.dali import Pipeline

from gpumix.validation import check_int

__all__ = ["READER_NAME", "resolve_device", "pipeline_settings", "reader_meta"]

# DALI's iterators (and gpumix's) find the epoch size through the reader's name.
READER_NAME = "Reader"


def resolve_device(device: str) -> str:
    """'gpu' or 'cpu' for the pipeline's device argument (``gpumix.device.resolve_device``).

    'auto' means gpu when the GPU path can run, else cpu with a warning said
    once; 'gpu' on a machine that cannot run it raises
    ``gpumix.device.GPUUnavailableError`` saying what is missing.
    """
    from gpumix import device as devices
    return devices.resolve_device(device)


def pipeline_settings(*, batch_size: int, device: str, device_id: int | None, shard_id: int, num_shards: int, seed: int,
                      num_threads: int, checkpoint: str | bytes | None,
                      prefetch_queue_depth: int) -> tuple[str, dict[str, Any]]:
    """Validate the common keywords and return (device, Pipeline keyword arguments).

    The builders default ``prefetch_queue_depth`` to 2: batches DALI keeps
    ready ahead of the consumer, so one batch decodes while one training step
    runs (DALI's default, also its resnet50 example's; 1 and 3 measured no
    better, docs/benchmarks.md).

    The pipeline's own seed (augmentation randomness) differs per shard, so
    ranks crop and flip independently; the readers' shuffling uses ``seed``
    itself, identical on every shard, so the shards split one permutation.
    """
    check_int("batch_size", batch_size, 1)
    num_shards = check_int("num_shards", num_shards, 1)
    shard_id = check_int("shard_id", shard_id, 0)
    if shard_id >= num_shards:
        raise ValueError(f"shard_id must be in [0, num_shards) = [0, {num_shards}), got {shard_id}")
    check_int("seed", seed, 0)
    check_int("num_threads", num_threads, 1)
    check_int("prefetch_queue_depth", prefetch_queue_depth, 1)
    device = resolve_device(device)
    if device == "gpu":
        device_id = check_int("device_id", device_id, 0)
    kwargs = dict(
        batch_size=batch_size,
        num_threads=num_threads,
        device_id=device_id if device == "gpu" else None,
        seed=(seed * 1_000_003 + shard_id) % (2**31),  # distinct augmentation stream per shard
        prefetch_queue_depth=prefetch_queue_depth,
        enable_checkpointing=True,
        checkpoint=checkpoint,
    )
    return device, kwargs


def reader_meta(pipe: Pipeline, name: str = READER_NAME) -> dict[str, Any]:
    """The metadata of a built pipeline's reader ``name`` (CIFAR pipelines answer for their in-memory source)."""
    return pipe.reader_meta(name)
