"""WebDataset shards dealt out afresh every epoch (issue 14, part 3), on crops of real photographs.

The ``photos`` fixture's shards: 4 tars of 5 samples, sample ``i`` in tar
``i // 5`` with ``.cls`` = ``i``, so a label names its sample and its tar.
"""
import shutil
import tarfile

import numpy as np
import pytest
import torch

import gpumix
from gpumix.pipelines import DatasetFileError, imagenet_train, imagenet_val
from gpumix.pipelines.imagenet import SHUFFLE_BUFFER
from gpumix.pipelines.webdataset import WebDatasetSource, read_index

TOTAL, PER_TAR = 20, 5


def _labels_per_epoch(data, shard, num_shards, epochs, seed=7, batch=4, builder=imagenet_train):
    """Per epoch, the labels of the real (unpadded) samples of one shard's pipeline."""
    pipe = builder(data, batch_size=batch, crop=16, device="cpu", num_threads=1, shard_id=shard,
                   num_shards=num_shards, seed=seed)
    pipe.build()
    size = TOTAL * (shard + 1) // num_shards - TOTAL * shard // num_shards
    found = []
    for _ in range(epochs):
        labels = []
        for _ in range(-(-size // batch)):
            _, y = pipe.run()
            labels += [int(v) for v in np.array(y.as_tensor()).ravel()]
        found.append(labels[:size])
    return found


@pytest.mark.parametrize("num_shards", [1, 2, 3])
def test_every_sample_once_per_epoch_across_ranks(photos, num_shards):
    per_rank = [_labels_per_epoch(photos["webdataset"], s, num_shards, 3) for s in range(num_shards)]
    for epoch in range(3):
        seen = [y for rank in per_rank for y in rank[epoch]]
        assert sorted(seen) == list(range(TOTAL)), f"epoch {epoch}: {sorted(seen)}"


def test_ranks_get_other_tars_every_epoch(photos):
    """The tar order is a permutation per (seed, epoch), the same on every rank; rank r reads slice r of it."""
    num_shards, epochs = 2, 6
    per_rank = [_labels_per_epoch(photos["webdataset"], s, num_shards, epochs) for s in range(num_shards)]
    tars_of_rank0 = [frozenset(y // PER_TAR for y in per_rank[0][e]) for e in range(epochs)]
    assert len(set(tars_of_rank0)) > 1, f"rank 0 read the same tars every epoch: {tars_of_rank0}"
    source = WebDatasetSource(photos["webdataset"], [t[:-4] + ".idx" for t in photos["webdataset"]], batch_size=4,
                              shard_id=0, num_shards=num_shards, seed=7, shuffle=True, buffer=SHUFFLE_BUFFER)
    for e in range(epochs):
        order = [t for t in source.tar_order(e)]
        assert sorted(order) == [0, 1, 2, 3]
        # 20 samples, 2 ranks: rank 0 reads the first two tars of the epoch's order, whole
        assert tars_of_rank0[e] == frozenset(order[:2]), (e, order)
        assert frozenset(y // PER_TAR for y in per_rank[1][e]) == frozenset(order[2:])


def test_same_seed_same_order_other_seed_other_order(photos):
    a = _labels_per_epoch(photos["webdataset"], 0, 1, 3, seed=3)
    b = _labels_per_epoch(photos["webdataset"], 0, 1, 3, seed=3)
    c = _labels_per_epoch(photos["webdataset"], 0, 1, 3, seed=4)
    assert a == b and a != c
    assert a[0] != a[1] != a[2]  # each epoch its own order


def test_the_local_shuffle_moves_samples_at_most_buffer_places(photos):
    index = [t[:-4] + ".idx" for t in photos["webdataset"]]
    for buffer in (1, 3):
        source = WebDatasetSource(photos["webdataset"], index, batch_size=4, shard_id=0, num_shards=1, seed=1,
                                  shuffle=True, buffer=buffer)
        order = source.order(0)
        by_tar = np.concatenate([np.arange(t * PER_TAR, (t + 1) * PER_TAR) for t in source.tar_order(0)])
        position = {int(v): i for i, v in enumerate(by_tar)}
        moves = [abs(position[int(v)] - i) for i, v in enumerate(order)]
        assert sorted(order) == list(range(TOTAL)) and max(moves) <= buffer


def test_validation_keeps_the_order_and_each_rank_its_slice(photos):
    for shard in range(3):
        got = _labels_per_epoch(photos["webdataset"], shard, 3, 2, builder=imagenet_val)
        lo, hi = TOTAL * shard // 3, TOTAL * (shard + 1) // 3
        assert got == [list(range(lo, hi))] * 2


def _loader(data, state=None, rank=0, num_shards=2):
    pipe = imagenet_train(data, batch_size=3, crop=16, device="cpu", num_threads=1, shard_id=rank,
                          num_shards=num_shards, seed=5, checkpoint=None if state is None else state["dali"])
    mix = gpumix.Mixup(num_classes=TOTAL, alpha=0.4, seed=5)
    return gpumix.MixupIterator(pipe, mix, mean=[120.0] * 3, std=[60.0] * 3, rank=rank, state=state,
                                return_params=True)


def _steps(loader, n):
    out = []
    while len(out) < n:
        for batch in loader:
            out.append((batch.images.clone(), batch.labels.clone()))
            if len(out) == n:
                break
    return out


@pytest.mark.parametrize("taken_after", [2, 4, 7])  # mid-epoch, at its end (4 batches of 10), in the next
def test_mid_epoch_resume_is_exact(photos, taken_after):
    loader = _loader(photos["webdataset"], rank=1)
    _steps(loader, taken_after)
    state = loader.state_dict()
    want = _steps(loader, 6)
    got = _steps(_loader(photos["webdataset"], state=state, rank=1), 6)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(got, want))


def _rewrite(photos, tmp_path, member, payload):
    """A copy of the shards with ``member`` of the first tar replaced by ``payload`` (same size, same index)."""
    tars = []
    for tar in photos["webdataset"]:
        copy = tmp_path / tar.rsplit("/", 1)[1]
        shutil.copy(tar, copy)
        shutil.copy(tar[:-4] + ".idx", str(copy)[:-4] + ".idx")
        tars.append(str(copy))
    with tarfile.open(tars[0]) as t:
        info = t.getmember(member)
    data = bytearray(open(tars[0], "rb").read())
    data[info.offset_data:info.offset_data + info.size] = payload(info.size)
    open(tars[0], "wb").write(bytes(data))
    return tars


def test_a_malformed_label_names_its_tar_and_member(photos, tmp_path):
    tars = _rewrite(photos, tmp_path, "00000002.cls", lambda size: b"x" * size)
    pipe = imagenet_val(tars, batch_size=5, crop=16, device="cpu", num_threads=1)
    pipe.build()
    with pytest.raises(ValueError, match=rf"data: {tars[0]}:00000002.cls holds b'x', not a decimal class label"):
        pipe.run()


def test_a_corrupt_image_names_its_tar_and_key(photos, tmp_path):
    tars = _rewrite(photos, tmp_path, "00000003.jpg", lambda size: bytes(size))
    pipe = imagenet_val(tars, batch_size=5, crop=16, device="cpu", num_threads=1)
    pipe.build()
    with pytest.raises(DatasetFileError, match=rf"DALI could not decode {tars[0]}:00000003 \("):
        pipe.run()


def test_an_index_entry_without_a_label_is_named(tmp_path):
    (tmp_path / "a.idx").write_text("v1.2 2\njpg 512 10 0.jpg cls 1024 1 0.cls\njpg 2048 10 1.jpg\n")
    with pytest.raises(ValueError, match=rf"{tmp_path}/a.idx:3: sample 1 of {tmp_path}/a.tar lacks an image"):
        read_index(str(tmp_path / "a.idx"), str(tmp_path / "a.tar"))


def test_labels_come_out_as_int32(photos):
    pipe = imagenet_val(photos["webdataset"], batch_size=5, crop=16, device="cpu", num_threads=1)
    pipe.build()
    _, labels = pipe.run()
    y = np.array(labels.as_tensor())
    assert y.dtype == np.int32 and y.shape == (5, 1) and y.ravel().tolist() == [0, 1, 2, 3, 4]


def test_reader_workers_read_the_same_stream_and_resume_exactly(photos):
    """reader_workers=1: the samples are read in a spawned worker process; same batches, same resume."""
    def loader(workers, state=None):
        pipe = imagenet_train(photos["webdataset"], batch_size=3, crop=16, device="cpu", num_threads=1, seed=5,
                              reader_workers=workers, checkpoint=None if state is None else state["dali"])
        return gpumix.MixupIterator(pipe, None, mean=[120.0] * 3, std=[60.0] * 3, state=state)

    in_process = [labels.tolist() for _, labels in loader(0)]
    parallel = loader(1)
    first = [labels.tolist() for _, labels in parallel]
    assert first == in_process and sorted(sum(first, [])) == list(range(TOTAL))
    state = parallel.state_dict()
    want = [labels.tolist() for _, labels in parallel]
    assert [labels.tolist() for _, labels in loader(1, state)] == want


def test_reader_workers_must_be_a_count(photos):
    with pytest.raises(ValueError, match=r"reader_workers must be >= 0, got -1"):
        imagenet_train(photos["webdataset"], batch_size=2, device="cpu", reader_workers=-1)
