"""Sources that gpumix feeds to DALI itself, sharded and padded the way DALI's readers are.

A ``ShardedSource`` is a per-sample ``fn.external_source`` callback: epoch
``e`` of shard ``s`` is the shard's slice ``[n*s//S, n*(s+1)//S)`` of the
epoch's order (``order(e)``, a subclass's), its last batch padded with its
last sample (DALI's ``pad_last_batch=True``), and epochs follow each other
without a break. The callback depends only on DALI's ``SampleInfo``
(iteration and index in the batch), so DALI's checkpoint of the pipeline (its
iteration count) resumes it exactly. A ``SourcePipeline`` answers
``reader_meta(READER_NAME)`` for the source with the numbers a DALI reader
would give, so DALI's iterators and gpumix's find the epoch size by the
reader's name, drop the padding and count epochs.
"""
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from nvidia.dali import Pipeline

from gpumix.pipelines._common import READER_NAME

__all__ = ["ShardedSource", "SourcePipeline"]


class ShardedSource:
    """Base of a per-sample external-source callback over ``total`` samples, split into ``num_shards`` shards.

    Subclasses define ``order(epoch)`` (the epoch's sample indices, the same
    on every shard, a sequence of ``total`` ints) and ``sample(i)`` (the
    outputs of sample ``i``).
    """

    def __init__(self, total: int, *, batch_size: int, shard_id: int, num_shards: int) -> None:
        self.total = total
        # DALI's shard boundaries: shard s holds [n*s//S, n*(s+1)//S) of each epoch's order
        self.start = total * shard_id // num_shards
        self.shard_size = total * (shard_id + 1) // num_shards - self.start
        if self.shard_size == 0:
            raise ValueError(f"num_shards: {num_shards} shards of {total} samples leave shard {shard_id} empty")
        self.batch_size, self.shard_id, self.num_shards = batch_size, shard_id, num_shards
        self.batches_per_epoch = math.ceil(self.shard_size / batch_size)

    def order(self, epoch: int) -> Sequence[int] | np.ndarray:
        """The sample indices of ``epoch``, the same on every shard (a subclass's)."""
        raise NotImplementedError

    def sample(self, i: int) -> tuple[np.ndarray, ...]:
        """The outputs of sample ``i`` (a subclass's)."""
        raise NotImplementedError

    def locate(self, iteration: int, idx_in_batch: int) -> tuple[int, int]:
        """(epoch, sample index) of the sample DALI asks for at ``iteration``, ``idx_in_batch``."""
        epoch, batch = divmod(iteration, self.batches_per_epoch)
        k = min(batch * self.batch_size + idx_in_batch, self.shard_size - 1)  # pad with the last sample
        return epoch, int(self.order(epoch)[self.start + k])

    def __call__(self, info: Any) -> tuple[np.ndarray, ...]:
        """The outputs DALI asks for with ``info`` (its ``SampleInfo``)."""
        return self.sample(self.locate(info.iteration, info.idx_in_batch)[1])

    def meta(self) -> dict[str, int]:
        """What DALI's reader_meta would report for this shard (pad_last_batch and stick_to_shard on)."""
        return {"epoch_size": self.total,
                "epoch_size_padded": self.batches_per_epoch * self.batch_size * self.num_shards,
                "number_of_shards": self.num_shards, "shard_id": self.shard_id, "pad_last_batch": 1,
                "stick_to_shard": 1}


class SourcePipeline(Pipeline):
    """A Pipeline fed by a ``ShardedSource`` that answers ``reader_meta`` for it under ``READER_NAME``.

    ``reader_meta`` is the source's ``meta()``; the other keywords are
    ``Pipeline``'s. Give it its graph with ``dali_compat.build_graph`` (or
    DALI's ``with pipe:`` and ``set_outputs``).
    """

    def __init__(self, *, reader_meta: dict[str, int], **pipeline_kwargs: Any) -> None:
        super().__init__(**pipeline_kwargs)
        self.gpumix_reader_meta = dict(reader_meta)

    def reader_meta(self, name: str | None = None) -> dict[str, Any]:
        """DALI's ``reader_meta``, with the source's metadata under ``READER_NAME`` (a copy)."""
        if name is None:
            return {READER_NAME: dict(self.gpumix_reader_meta), **super().reader_meta()}
        if name == READER_NAME:
            return dict(self.gpumix_reader_meta)
        return super().reader_meta(name)
