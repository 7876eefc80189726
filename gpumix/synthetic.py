"""Synthetic datasets in ImageNet, WebDataset or CIFAR format, written to disk: the data source of tests and benchmarks.

Images are smooth, natural-image-like scenes (low-frequency colour fields,
shapes, mild noise), not white noise, so JPEG sizes and decode cost are
realistic: about 400x350 pixels at quality 90 by default, like ImageNet.
Everything is written to a temporary folder first and moved into place at the
end, so a failure leaves nothing partial behind. ``gpumix-make-dataset``
(``gpumix.tools.make_dataset``) is its command line.

    make_dataset("imagenet", "data/train", classes=10, images_per_class=20)
"""
from __future__ import annotations

import io
import os
import pickle
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from gpumix.datasets import (
    CIFAR_DATASETS,
    CIFAR_FILES,
    CIFAR_FOLDERS,
    CIFAR_FORMATS,
    CIFAR_IMAGE_BYTES,
    CIFAR_SIZE,
    NUM_CLASSES,
)

__all__ = ["DEFAULT_SIZE", "FORMATS", "make_dataset", "synthetic_image", "write_webdataset"]

FORMATS = ("imagenet", "webdataset", *CIFAR_DATASETS)
# ImageNet's typical image is about 400x350 (w x h); sizes vary by +-25% around it.
DEFAULT_SIZE = (350, 400)
JPEG_QUALITY = 90
# Samples per WebDataset shard: small enough for tests, a real run picks its own.
SHARD_SIZE = 1000


def synthetic_image(rng: np.random.Generator, height: int, width: int, class_id: int) -> np.ndarray:
    """uint8 (height, width, 3): a smooth colour field with a few shapes, tinted by class."""
    tint = np.array([(class_id * 53) % 256, (class_id * 97) % 256, (class_id * 151) % 256], dtype=np.float32)
    coarse = rng.uniform(0, 255, size=(4, 5, 3)).astype(np.float32) * 0.6 + tint * 0.4
    field = Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(field)
    for _ in range(rng.integers(2, 6)):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        x1, y1 = x0 + rng.integers(width // 8, width // 2), y0 + rng.integers(height // 8, height // 2)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([int(x0), int(y0), int(x1), int(y1)], fill=colour)
    field = field.filter(ImageFilter.GaussianBlur(radius=1.5))
    pixels = np.asarray(field, dtype=np.float32) + rng.normal(0, 6, size=(height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _jpeg(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _samples(classes: int, per_class: int, seed: int, size: tuple[int, int],
             jitter: float) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (index, class_id, uint8 image) in a fixed order; sizes vary by +-``jitter``."""
    rng = np.random.default_rng(seed)
    for i in range(classes * per_class):
        class_id = i // per_class
        scale = 1 + rng.uniform(-jitter, jitter, size=2)
        h, w = max(8, int(size[0] * scale[0])), max(8, int(size[1] * scale[1]))
        yield i, class_id, synthetic_image(rng, h, w, class_id)


def _write_imagenet(out: str, samples: Iterable[tuple[int, int, np.ndarray]], total: int) -> None:
    for i, class_id, pixels in tqdm(samples, total=total, desc="imagenet", unit="img"):
        folder = os.path.join(out, f"class_{class_id:04d}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"img_{i:08d}.JPEG"), "wb") as f:
            f.write(_jpeg(pixels))


def write_webdataset(out: str, samples: Iterable[tuple[int, int, np.ndarray]], total: int | None = None, *,
                     shard_size: int = SHARD_SIZE) -> list[str]:
    """Write WebDataset shards of ``shard_size`` samples, each with its DALI index, into the folder ``out``.

    ``samples`` yields ``(index, label, pixels)`` with indexes 0, 1, 2, ... and
    uint8 (H, W, 3) pixels, written as ``{index:08d}.jpg`` (quality 90) and a
    decimal ``{index:08d}.cls``. Returns the ``.tar`` paths in order.
    """
    from wds2idx import IndexCreator  # ships with nvidia-dali

    shards: list[str] = []
    tar: tarfile.TarFile | None = None
    for i, class_id, pixels in tqdm(samples, total=total, desc="webdataset", unit="img", disable=total is None):
        if tar is None or i % shard_size == 0:
            if tar is not None:
                tar.close()
            shards.append(os.path.join(out, f"shard-{i // shard_size:06d}.tar"))
            tar = tarfile.open(shards[-1], "w")
        for ext, payload in (("jpg", _jpeg(pixels)), ("cls", str(class_id).encode("ascii"))):
            member = tarfile.TarInfo(f"{i:08d}.{ext}")
            member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload))
    if tar is not None:
        tar.close()
    for shard in shards:
        with IndexCreator(shard, shard[:-4] + ".idx", verbose=False) as creator:
            creator.create_index()
    return shards


def _cifar_arrays(classes: int, per_class: int, seed: int,
                  coarse_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CHW-flattened uint8 (N, CIFAR_IMAGE_BYTES) images, fine labels, coarse labels, in a fixed shuffled order."""
    n = classes * per_class
    data = np.empty((n, CIFAR_IMAGE_BYTES), dtype=np.uint8)
    labels = np.repeat(np.arange(classes), per_class)
    for i, _class_id, pixels in tqdm(_samples(classes, per_class, seed, (CIFAR_SIZE, CIFAR_SIZE), 0.0), total=n,
                                    desc="cifar", unit="img"):
        data[i] = pixels.transpose(2, 0, 1).reshape(-1)
    order = np.random.default_rng(seed + 1).permutation(n)  # official files are not sorted by class
    return data[order], labels[order], labels[order] % coarse_classes


def _write_cifar(out: str, name: str, classes: int, per_class: int, seed: int, cifar_format: str,
                 test_fraction: float = 0.2) -> None:
    data, fine, coarse = _cifar_arrays(classes, per_class, seed, coarse_classes=max(1, classes // 5))
    n_test = max(1, int(len(data) * test_fraction))
    splits = {"test": (data[:n_test], fine[:n_test], coarse[:n_test]),
              "train": (data[n_test:], fine[n_test:], coarse[n_test:])}
    # the official file names (gpumix.datasets.CIFAR_FILES), the training set split in order over them
    names = CIFAR_FILES[(name, cifar_format)]
    files = {}
    for split, stems in names.items():
        parts = np.array_split(np.arange(len(splits[split][0])), len(stems))
        files.update({stem: tuple(a[idx] for a in splits[split]) for stem, idx in zip(stems, parts)})
    folder = os.path.join(out, CIFAR_FOLDERS[(name, cifar_format)])
    os.makedirs(folder)
    if cifar_format == "binary":
        for stem, (x, y, yc) in files.items():
            rows = [y[:, None].astype(np.uint8), x] if name == "cifar10" else \
                [yc[:, None].astype(np.uint8), y[:, None].astype(np.uint8), x]
            np.concatenate(rows, axis=1).tofile(os.path.join(folder, stem))
    else:
        for stem, (x, y, yc) in files.items():
            record = {b"batch_label": stem.encode(), b"data": x,
                      b"filenames": [f"{stem}_{i:06d}.png".encode() for i in range(len(x))]}
            if name == "cifar10":
                record[b"labels"] = [int(v) for v in y]
            else:
                record[b"fine_labels"] = [int(v) for v in y]
                record[b"coarse_labels"] = [int(v) for v in yc]
            with open(os.path.join(folder, stem), "wb") as f:
                pickle.dump(record, f, protocol=2)  # the official files are protocol-2 pickles


def make_dataset(fmt: str, output: str | os.PathLike, *, classes: int, images_per_class: int, seed: int = 0,
                 size: tuple[int, int] = DEFAULT_SIZE, cifar_format: str = "binary") -> str:
    """Write the dataset into ``output``, which must not exist or be an empty folder. Returns ``output``."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if cifar_format not in CIFAR_FORMATS:
        raise ValueError(f"cifar_format must be 'binary' or 'python', got {cifar_format!r}")
    if not isinstance(classes, int) or classes < 2:
        raise ValueError(f"classes must be an int >= 2, got {classes!r}")
    if fmt in NUM_CLASSES and classes > NUM_CLASSES[fmt]:
        raise ValueError(f"classes must be <= {NUM_CLASSES[fmt]} for {fmt}, got {classes}")
    if not isinstance(images_per_class, int) or images_per_class < 1:
        raise ValueError(f"images_per_class must be an int >= 1, got {images_per_class!r}")
    output = os.path.abspath(output)
    if os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)):
        raise FileExistsError(f"output: {output} exists and is not an empty folder")
    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".gpumix-make-", dir=parent)
    try:
        total = classes * images_per_class
        if fmt == "imagenet":
            _write_imagenet(staging, _samples(classes, images_per_class, seed, size, 0.25), total)
        elif fmt == "webdataset":
            write_webdataset(staging, _samples(classes, images_per_class, seed, size, 0.25), total)
        else:
            _write_cifar(staging, fmt, classes, images_per_class, seed, cifar_format)
        if os.path.isdir(output):
            os.rmdir(output)
        os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output
