"""CIFAR pipelines on the CPU: outputs, exactly-once sharding, determinism, resume."""
import numpy as np
import pytest

from gpumix.pipelines import cifar_train, cifar_val, reader_meta
from gpumix.pipelines.cifar import ShardSource
from gpumix.pipelines.cifar_files import load_cifar


@pytest.mark.parametrize("builder", [cifar_train, cifar_val])
def test_shapes_dtypes_labels_and_meta(datasets, builder):
    pipe = builder(datasets["cifar100-python"], batch_size=6, dataset="cifar100", device="cpu", num_threads=1)
    pipe.build()
    images, labels = pipe.run()
    assert all(np.array(images[i]).shape == (32, 32, 3) and np.array(images[i]).dtype == np.uint8
               for i in range(6))
    y = np.array(labels.as_tensor())
    assert y.dtype == np.int32 and y.shape == (6,) and ((y >= 0) & (y < 20)).all()
    n = 16 if builder is cifar_val else 64  # 20 % of 80 images is the test split
    assert reader_meta(pipe)["epoch_size"] == n


@pytest.mark.parametrize("num_shards", [1, 2, 3])
def test_val_every_sample_once_per_epoch_across_shards(datasets, epochs, num_shards):
    test_x, _ = load_cifar(datasets["cifar10-binary"], "cifar10", "test")

    def build(shard):
        return cifar_val(datasets["cifar10-binary"], batch_size=3, device="cpu", num_threads=1, shard_id=shard,
                         num_shards=num_shards)

    seen, _ = epochs(build, len(test_x), num_shards, 2, 3, key=lambda img: np.array(img).tobytes())
    want = sorted(x.tobytes() for x in test_x)
    assert sorted(seen[0]) == want and sorted(seen[1]) == want


@pytest.mark.parametrize("num_shards", [1, 2, 3])
def test_train_order_is_a_fresh_permutation_per_epoch_split_across_shards(num_shards):
    images = np.arange(23, dtype=np.uint8).reshape(23, 1, 1, 1)
    labels = np.arange(23, dtype=np.int32)

    class Info:
        def __init__(self, iteration, idx):
            self.iteration, self.idx_in_batch = iteration, idx

    orders = []
    for epoch in range(3):
        seen = []
        for shard in range(num_shards):
            src = ShardSource(images, labels, batch_size=4, shard_id=shard, num_shards=num_shards, seed=5,
                              shuffle=True)
            base = epoch * src.batches_per_epoch
            seen += [int(src(Info(base + k // 4, k % 4))[1][0]) for k in range(src.shard_size)]
        assert sorted(seen) == list(range(23))
        orders.append(seen)
    assert orders[0] != orders[1] != orders[2]


def test_train_same_seed_same_stream_and_resume(datasets):
    def make(seed, checkpoint=None):
        pipe = cifar_train(datasets["cifar10-binary"], batch_size=7, device="cpu", num_threads=1, seed=seed,
                           checkpoint=checkpoint)
        pipe.build()
        return pipe

    def take(pipe, n):
        return [np.concatenate([np.array(t.as_tensor()).ravel() for t in pipe.run()]) for _ in range(n)]

    a, b, c = make(1), make(1), make(2)
    first_a, first_b, first_c = take(a, 3), take(b, 3), take(c, 3)
    assert all(np.array_equal(x, y) for x, y in zip(first_a, first_b))
    assert not all(np.array_equal(x, y) for x, y in zip(first_a, first_c))
    take(a, 10)  # past the end of the first epoch (64 samples, 10 batches)
    state = a.checkpoint()
    want = take(a, 4)
    assert all(np.array_equal(x, y) for x, y in zip(take(make(1, state), 4), want))


def test_train_outputs_are_padded_crops_of_training_images(datasets):
    train_x, _ = load_cifar(datasets["cifar10-binary"], "cifar10", "train")
    padded = np.pad(train_x, ((0, 0), (4, 4), (4, 4), (0, 0)))
    variants = {}
    for dy in range(9):
        for dx in range(9):
            crops = padded[:, dy:dy + 32, dx:dx + 32]
            for flip in (False, True):
                for x in (crops[:, :, ::-1] if flip else crops):
                    variants.setdefault(x.tobytes(), (dy - 4, dx - 4, flip))
    pipe = cifar_train(datasets["cifar10-binary"], batch_size=32, device="cpu", num_threads=1, seed=0)
    pipe.build()
    found = []
    for _ in range(2):
        images, _ = pipe.run()
        found += [variants.get(np.array(images[i]).tobytes()) for i in range(len(images))]
    assert None not in found, "an output is not a 4-pixel padded crop of any training image"
    assert {f[2] for f in found} == {False, True}
    assert len({f[:2] for f in found}) > 10  # many offsets, not a fixed crop
