"""Validation over shards of unequal sizes (issue 14, part 5): every image once across ranks, no rank fails.

20 crops of real photographs, 3 ranks (shards of 6, 7 and 7 images), batch 3:
DALI pads each shard to 3 batches, so the 6-image shard's last batch holds
only padding. ``MixupIterator`` with the PARTIAL policy must end that rank's
epoch there instead of failing on an empty batch, and the ranks together must
yield each image exactly once, epoch after epoch (DALI rotates the shards
between epochs, so each rank meets the short shard in turn).
"""
import collections
import hashlib

import pytest
import torch

import gpumix
from gpumix.pipelines import imagenet_val

SOURCES = ["folder", "unique_list", "webdataset"]
RANKS, BATCH, EPOCHS = 3, 3, 3


def _loader(data, shard_id, num_shards):
    pipe = imagenet_val(data, batch_size=BATCH, crop=32, resize=40, device="cpu", num_threads=1,
                        shard_id=shard_id, num_shards=num_shards)
    return gpumix.MixupIterator(pipe, None, mean=[120.0] * 3, std=[60.0] * 3, last_batch_policy="partial")


def _digest(image):
    return hashlib.sha1(image.contiguous().numpy().tobytes()).hexdigest()


def _epochs(loader, n):
    """Per epoch: the (image digest, label) pairs the loader yielded, and its batch sizes."""
    found = []
    for _ in range(n):
        samples, sizes = [], []
        for images, labels in loader:
            sizes.append(images.shape[0])
            samples += [(_digest(images[i]), int(labels[i])) for i in range(images.shape[0])]
        found.append((samples, sizes))
    return found


@pytest.mark.parametrize("source", SOURCES)
def test_every_image_once_across_three_ranks(photos, source):
    data = photos[source]
    (everything, _), = _epochs(_loader(data, 0, 1), 1)
    assert len(everything) == 20 and len(set(everything)) == 20
    per_rank = [_epochs(_loader(data, rank, RANKS), EPOCHS) for rank in range(RANKS)]
    for epoch in range(EPOCHS):
        seen = [pair for rank in range(RANKS) for pair in per_rank[rank][epoch][0]]
        assert collections.Counter(seen) == collections.Counter(everything), f"epoch {epoch}"
        sizes = sorted(sum(per_rank[rank][epoch][1]) for rank in range(RANKS))
        assert sizes == [6, 7, 7], f"epoch {epoch}: {sizes}"
        assert all(0 < b <= BATCH for rank in range(RANKS) for b in per_rank[rank][epoch][1])
    # the short shard's rank yields 2 batches, not 3 with an empty one; the others 3 (3 + 3 + 1)
    assert sorted(len(per_rank[r][0][1]) for r in range(RANKS)) == [2, 3, 3]


def test_labels_are_the_sources_labels(photos):
    """The counted pairs carry the right labels: image i of the unique list has label i."""
    (pairs, _), = _epochs(_loader(photos["unique_list"], 0, 1), 1)
    assert sorted(label for _, label in pairs) == list(range(20))
    (folder_pairs, _), = _epochs(_loader(photos["folder"], 0, 1), 1)
    assert sorted(label for _, label in folder_pairs) == sorted([0, 1, 2, 3] * 5)
    by_image = dict(pairs)
    assert {by_image[d] // 5 for d, label in folder_pairs if d in by_image} >= {0, 1, 2, 3}
    assert all(by_image[d] // 5 == label for d, label in folder_pairs)


def test_the_iterator_resumes_at_the_short_shards_end(photos):
    """A state taken after the short shard's last real batch resumes into the next epoch, with no empty batch."""
    loader = _loader(photos["folder"], 0, RANKS)
    batches = [labels.clone() for _, labels in loader]
    assert len(batches) == 2
    state = loader.state_dict()
    want = [labels.clone() for _, labels in loader]
    pipe = imagenet_val(photos["folder"], batch_size=BATCH, crop=32, resize=40, device="cpu", num_threads=1,
                        shard_id=0, num_shards=RANKS, checkpoint=state["dali"])
    resumed = gpumix.MixupIterator(pipe, None, mean=[120.0] * 3, std=[60.0] * 3, last_batch_policy="partial",
                                   state=state)
    got = [labels.clone() for _, labels in resumed]
    assert len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want))
