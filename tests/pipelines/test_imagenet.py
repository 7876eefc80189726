"""ImageNet pipelines on the CPU: outputs, exactly-once sharding, determinism, resume, val accuracy, bad input."""
import math
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from gpumix.pipelines import imagenet_train, imagenet_val, reader_meta

SOURCES = ["imagenet", "file_list", "webdataset"]


def _batches(pipe, n):
    out = []
    for _ in range(n):
        images, labels = pipe.run()
        out.append(([np.array(images[i]) for i in range(len(images))], np.array(labels.as_tensor()).ravel()))
    return out


def _same(a, b):
    return all(np.array_equal(x, y) for (ia, la), (ib, lb) in zip(a, b) for x, y in zip(ia + [la], ib + [lb]))


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("builder", [imagenet_train, imagenet_val])
def test_shapes_dtypes_and_labels(datasets, source, builder):
    pipe = builder(datasets[source], batch_size=4, crop=32, device="cpu", num_threads=2)
    pipe.build()
    images, labels = pipe.run()
    arrays = [np.array(images[i]) for i in range(len(images))]
    assert len(arrays) == 4 and all(a.shape == (32, 32, 3) and a.dtype == np.uint8 for a in arrays)
    y = np.array(labels.as_tensor())
    assert y.dtype == np.int32 and ((y >= 0) & (y < 3)).all()
    assert reader_meta(pipe)["epoch_size"] == 15


# WebDataset samples carry no DALI source info (gpumix feeds them): tests/pipelines/test_webdataset.py
# checks them by unique labels instead.
@pytest.mark.parametrize("source", ["imagenet", "file_list"])
@pytest.mark.parametrize("num_shards", [1, 2, 3])
def test_every_sample_once_per_epoch_across_shards(datasets, epochs, source, num_shards):
    def build(shard):
        return imagenet_train(datasets[source], batch_size=4, crop=16, device="cpu", num_threads=1,
                              shard_id=shard, num_shards=num_shards, seed=7)

    seen, labels = epochs(build, 15, num_shards, 2, 4, key=lambda img: img.source_info())
    for e in range(2):
        assert len(seen[e]) == 15 and len(set(seen[e])) == 15, f"epoch {e}: {sorted(seen[e])}"
        assert sorted(labels[e]) == [0] * 5 + [1] * 5 + [2] * 5
    assert set(seen[0]) == set(seen[1])


@pytest.mark.parametrize("source", ["imagenet", "webdataset"])
def test_same_seed_same_stream_other_seed_other_order(datasets, source):
    def first(seed):
        pipe = imagenet_train(datasets[source], batch_size=5, crop=16, device="cpu", num_threads=2, seed=seed)
        pipe.build()
        return _batches(pipe, 4)

    a, b, c = first(3), first(3), first(4)
    assert _same(a, b)
    assert not _same(a, c)


@pytest.mark.parametrize("source", SOURCES)
def test_checkpoint_resumes_the_same_batches(datasets, source):
    pipe = imagenet_train(datasets[source], batch_size=4, crop=16, device="cpu", num_threads=1, seed=1)
    pipe.build()
    _batches(pipe, 5)  # past the first epoch (4 batches of 15 samples)
    state = pipe.checkpoint()
    want = _batches(pipe, 3)
    resumed = imagenet_train(datasets[source], batch_size=4, crop=16, device="cpu", num_threads=1, seed=1,
                             checkpoint=state)
    resumed.build()
    assert _same(_batches(resumed, 3), want)


@pytest.mark.parametrize("crop, resize", [(24, 28), (224, 256)])
def test_val_matches_a_pil_resize_and_center_crop(datasets, crop, resize):
    """Same decoder (libjpeg-turbo), same geometry, Pillow's antialiased bilinear resize as the reference.

    The geometry follows DALI's rounding, half away from zero, for the resized
    size and the crop's corner; torchvision truncates the long side and rounds
    the corner half to even, so it can sit one pixel away.
    """
    pipe = imagenet_val(datasets["file_list"], batch_size=5, crop=crop, resize=resize, device="cpu", num_threads=1)
    pipe.build()
    images, _ = pipe.run()
    for i in range(len(images)):
        path = os.path.join(datasets["imagenet"], images[i].source_info())
        with Image.open(path) as img:
            w, h = img.size
            scale = resize / min(w, h)
            size = (max(resize, math.floor(w * scale + 0.5)), max(resize, math.floor(h * scale + 0.5)))
            img = img.convert("RGB").resize(size, Image.BILINEAR)
            left, top = math.floor((size[0] - crop) / 2 + 0.5), math.floor((size[1] - crop) / 2 + 0.5)
            ref = np.asarray(img.crop((left, top, left + crop, top + crop)), dtype=np.float64)
        diff = np.abs(np.array(images[i]).astype(np.float64) - ref)
        assert diff.mean() < 1.5, f"{path}: mean abs difference {diff.mean():.2f}"


@pytest.mark.parametrize("damage", [
    lambda data: data[:400],  # DALI's own message names no file for this one
    lambda data: data[: len(data) // 2],  # this one DALI names itself
    lambda data: np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
], ids=["header-only", "half", "random-bytes"])
def test_corrupt_jpeg_error_names_the_file(datasets, tmp_path, damage):
    root = tmp_path / "bad"
    shutil.copytree(datasets["imagenet"], root)
    victim = sorted((root / "class_0001").iterdir())[0]
    victim.write_bytes(damage(victim.read_bytes()))
    pipe = imagenet_train(str(root), batch_size=15, crop=16, device="cpu", num_threads=1)
    pipe.build()
    with pytest.raises(RuntimeError, match=rf"class_0001/{victim.name}"):
        pipe.run()


# --- bad input: one message each ---------------------------------------------------------------

def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"data: {tmp_path}/nope does not exist"):
        imagenet_train(str(tmp_path / "nope"), batch_size=2, device="cpu")


def test_empty_folder(tmp_path):
    with pytest.raises(ValueError, match=rf"data: the folder {tmp_path} is empty"):
        imagenet_val(str(tmp_path), batch_size=2, device="cpu")


def test_folder_without_class_subfolders(tmp_path):
    (tmp_path / "a.JPEG").write_bytes(b"x")
    with pytest.raises(ValueError, match=rf"data: the folder {tmp_path} has no class subfolders"):
        imagenet_train(str(tmp_path), batch_size=2, device="cpu")


def test_empty_file_list(tmp_path):
    (tmp_path / "list.txt").write_text("")
    with pytest.raises(ValueError, match=r"data: the file list .*list.txt is empty"):
        imagenet_train(str(tmp_path / "list.txt"), batch_size=2, device="cpu")


def test_webdataset_shard_without_index(datasets, tmp_path):
    shard = tmp_path / "shard.tar"
    shutil.copy(datasets["webdataset"][0], shard)
    with pytest.raises(FileNotFoundError, match=rf"WebDataset shard {shard} has no index {tmp_path}/shard.idx"):
        imagenet_train([str(shard)], batch_size=2, device="cpu")


def test_shard_id_outside_range(datasets):
    with pytest.raises(ValueError, match=r"shard_id must be in \[0, num_shards\) = \[0, 2\), got 2"):
        imagenet_train(datasets["imagenet"], batch_size=2, device="cpu", shard_id=2, num_shards=2)


def test_batch_size_below_one(datasets):
    with pytest.raises(ValueError, match=r"batch_size must be >= 1, got 0"):
        imagenet_val(datasets["imagenet"], batch_size=0, device="cpu")


def test_unknown_device(datasets):
    with pytest.raises(ValueError, match=r"device must be 'auto', 'gpu' or 'cpu', got 'tpu'"):
        imagenet_val(datasets["imagenet"], batch_size=2, device="tpu")
