"""The benchmark's samples as torch Datasets of (PIL image, label) for the competitors' loaders.

They serve the same files (or CIFAR arrays) the DALI pipelines read, with a
settable ``transform``, the way torchvision's datasets do, for torchvision's
``DataLoader`` and timm's ``create_loader``.
"""
from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Sequence
from typing import IO, Any

import numpy as np
import torch
from PIL import Image

from gpumix.bench.data import DataSpec
from gpumix.datasets import SourceKind

__all__ = ["ArrayImages", "FileListImages", "Repeated", "TarImages", "torch_dataset"]


class _Images(torch.utils.data.Dataset):
    """(PIL RGB image, int label) samples with a settable ``transform``, as torchvision datasets have."""

    transform: Callable[[Any], Any] | None = None

    def load(self, i: int) -> tuple[Image.Image, int]:
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[Any, int]:
        image, label = self.load(i)
        return (image if self.transform is None else self.transform(image)), label


class FileListImages(_Images):
    """A DALI file list, read by the pipelines' own reader (``gpumix.file_list``)."""

    def __init__(self, path: str) -> None:
        from gpumix.file_list import read_file_list

        self.samples = list(zip(*read_file_list(path)))

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> tuple[Image.Image, int]:
        path, label = self.samples[i]
        with Image.open(path) as img:
            return img.convert("RGB"), label


class TarImages(_Images):
    """WebDataset shards read by member offset: image (.jpg/.jpeg/.png) plus decimal .cls label per sample."""

    def __init__(self, tars: Sequence[str]) -> None:
        self.samples: list[tuple[str, tuple[int, int], int]] = []
        self._files: dict[tuple[int, str], IO[bytes]] = {}
        for tar in tars:
            parts: dict[str, dict[str, tuple[int, int]]] = {}
            with tarfile.open(tar) as t:
                for m in t.getmembers():
                    if m.isfile() and "." in os.path.basename(m.name):
                        stem, ext = m.name.rsplit(".", 1)
                        parts.setdefault(stem, {})[ext.lower()] = (m.offset_data, m.size)
            with open(tar, "rb") as f:
                for stem, found in parts.items():
                    image = next((found[e] for e in ("jpg", "jpeg", "png") if e in found), None)
                    if image is None or "cls" not in found:
                        raise ValueError(f"data: sample {stem} in {tar} lacks an image or a .cls label")
                    f.seek(found["cls"][0])
                    self.samples.append((tar, image, int(f.read(found["cls"][1]).decode("ascii"))))

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, i: int) -> tuple[Image.Image, int]:
        tar, (offset, size), label = self.samples[i]
        # one open file per shard and process: forked DataLoader workers must not share a file offset
        key = (os.getpid(), tar)
        f = self._files.get(key)
        if f is None:
            f = self._files[key] = open(tar, "rb")  # noqa: SIM115 (kept open for the process's life)
        f.seek(offset)
        with Image.open(io.BytesIO(f.read(size))) as img:
            return img.convert("RGB"), label

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_files": {}}


class ArrayImages(_Images):
    """In-memory uint8 (N, H, W, 3) images as PIL images, as torchvision's CIFAR10 class serves them."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def load(self, i: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[i]), int(self.labels[i])


class Repeated(torch.utils.data.Dataset):
    """``base`` repeated to ``length`` samples; ``transform`` is the base's (timm's create_loader sets it)."""

    def __init__(self, base: Any, length: int) -> None:
        self.base, self.length = base, max(int(length), len(base))

    @property
    def transform(self) -> Any:
        return self.base.transform

    @transform.setter
    def transform(self, value: Any) -> None:
        self.base.transform = value

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Any:
        return self.base[i % len(self.base)]


def torch_dataset(spec: DataSpec) -> torch.utils.data.Dataset:
    """The samples of ``spec`` as a torch Dataset of (PIL image, label), without a transform yet."""
    source = spec.source
    if source is None:  # CIFAR
        from gpumix.pipelines.cifar_files import load_cifar
        return ArrayImages(*load_cifar(spec.data, spec.kind, "train"))
    if source.kind is SourceKind.FOLDER:
        from torchvision.datasets import ImageFolder
        return ImageFolder(source.path)
    if source.kind is SourceKind.FILE_LIST:
        return FileListImages(source.path)
    return TarImages(list(source.paths))
