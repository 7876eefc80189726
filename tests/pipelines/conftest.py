"""Helpers to drain DALI pipelines (the tiny datasets are the session fixture ``datasets`` of tests/conftest.py)."""
import numpy as np
import pytest


def _shard_sizes(total, num_shards):
    """DALI's split: shard s holds samples [total*s//S, total*(s+1)//S)."""
    return [total * (s + 1) // num_shards - total * s // num_shards for s in range(num_shards)]


def _drain_epoch(pipe, shard_size, batch_size, key):
    """Run one epoch of a built pipeline; return key(sample) for each real (unpadded) sample, and the labels."""
    keys, labels = [], []
    for _ in range(-(-shard_size // batch_size)):
        images, y = pipe.run()
        y = np.array(y.as_tensor()).reshape(-1)
        for i in range(len(images)):
            if len(keys) < shard_size:
                keys.append(key(images[i]))
                labels.append(int(y[i]))
    return keys, labels


@pytest.fixture
def epochs():
    """Return ``run(build, total, num_shards, n_epochs, batch_size, key)``: per epoch, the keys of every
    real sample that all shards produced (build(shard_id) makes shard shard_id's pipeline)."""

    def run(build, total, num_shards, n_epochs, batch_size, key):
        per_epoch = [[] for _ in range(n_epochs)]
        labels = [[] for _ in range(n_epochs)]
        for shard in range(num_shards):
            pipe = build(shard)
            pipe.build()
            size = _shard_sizes(total, num_shards)[shard]
            for e in range(n_epochs):
                keys, y = _drain_epoch(pipe, size, batch_size, key)
                per_epoch[e].extend(keys)
                labels[e].extend(y)
        return per_epoch, labels

    return run
