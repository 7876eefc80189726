"""Tiny datasets made on the fly, once per test session, and helpers to drain DALI pipelines."""
import glob
import os

import numpy as np
import pytest

from gpumix.tools.make_dataset import make_dataset


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    """Paths of small synthetic datasets: imagenet folder, file list, webdataset shards, cifar in both formats."""
    root = tmp_path_factory.mktemp("data")
    found = {"imagenet": make_dataset("imagenet", root / "imagenet", classes=3, images_per_class=5, seed=1,
                                      size=(40, 56))}
    rows = []
    for label, cls in enumerate(sorted(os.listdir(found["imagenet"]))):
        for f in sorted(os.listdir(os.path.join(found["imagenet"], cls))):
            rows.append(f"{cls}/{f} {label}\n")
    found["file_list"] = os.path.join(found["imagenet"], "files.txt")
    with open(found["file_list"], "w") as f:
        f.writelines(rows)
    wds = make_dataset("webdataset", root / "wds", classes=3, images_per_class=5, seed=1, size=(40, 56))
    found["webdataset"] = sorted(glob.glob(os.path.join(wds, "*.tar")))
    for name in ("cifar10", "cifar100"):
        for fmt in ("binary", "python"):
            classes = 10 if name == "cifar10" else 20
            found[f"{name}-{fmt}"] = make_dataset(name, root / f"{name}-{fmt}", classes=classes, images_per_class=4,
                                                  seed=2, cifar_format=fmt)
    return found


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
