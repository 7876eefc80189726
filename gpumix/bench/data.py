"""What ``--data`` is: ``resolve_data`` turns paths (or None, the cached synthetic default) into a ``DataSpec``."""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from gpumix.bench.fields import field_error
from gpumix.datasets import CIFAR_DATASETS, CIFAR_FOLDERS, CIFAR_SIZE, NUM_CLASSES, STATS, DataSource, data_source
from gpumix.validation import check_int

__all__ = ["DEFAULT_CLASSES", "DEFAULT_PER_CLASS", "EPOCH", "DataSpec", "default_data", "resolve_data"]

# The embedded default: 10 classes x 64 ImageNet-sized JPEGs, made once and cached.
DEFAULT_CLASSES, DEFAULT_PER_CLASS = 10, 64
# The torch loaders' epoch is at least this long (the real datasets' train sizes), so that a small
# benchmark set does not make them restart their workers' prefetching every few batches.
EPOCH = {"imagenet": 1_281_167, "cifar10": 50_000, "cifar100": 50_000}


def default_data(cache: str | None = None) -> str:
    """The embedded default dataset's folder, made on first use under ``cache`` (default ~/.cache/gpumix)."""
    from gpumix.synthetic import make_dataset

    cache = cache or os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "gpumix")
    root = os.path.join(cache, f"imagenet-synthetic-{DEFAULT_CLASSES}x{DEFAULT_PER_CLASS}")
    if not os.path.isdir(root):
        make_dataset("imagenet", root, classes=DEFAULT_CLASSES, images_per_class=DEFAULT_PER_CLASS, seed=0)
    return root


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What ``--data`` resolved to.

    kind: 'imagenet', 'cifar10' or 'cifar100'; data: what the gpumix pipeline
    builders take (a folder, a file list, or a tuple of WebDataset shards);
    source: for ImageNet, its ``gpumix.datasets.DataSource`` (None for CIFAR); num_classes: K of the
    targets; image_size: the side of the crops; embedded: the cached default set.
    """

    kind: str
    data: str | tuple[str, ...]
    source: DataSource | None
    num_classes: int
    image_size: int
    embedded: bool = False

    def __post_init__(self) -> None:
        if self.kind not in EPOCH:
            raise ValueError(f"kind must be one of {', '.join(EPOCH)}, got {self.kind!r}")
        if (self.source is None) != (self.kind != "imagenet"):
            raise ValueError(f"source must be a DataSource for ImageNet data and None for CIFAR, got {self.source!r} "
                             f"for {self.kind}")
        check_int("num_classes", self.num_classes, 2)
        check_int("image_size", self.image_size, 1)

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(STATS[self.kind].mean)

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(STATS[self.kind].std)

    def describe(self) -> str:
        """One line for the report: what was read, from where."""
        if self.source is None:
            return f"{self.kind} folder {self.data}"
        default = " (the embedded synthetic default)" if self.embedded else ""
        return f"ImageNet-style {self.source.describe()}{default}"


def _cifar_kind(folder: str) -> str | None:
    """'cifar10' or 'cifar100' if ``folder`` holds (or is) an extracted CIFAR set, else None."""
    from gpumix.pipelines.cifar_files import detect_cifar_format

    for kind in CIFAR_DATASETS:
        try:
            detect_cifar_format(folder, kind)
        except FileNotFoundError:
            continue
        return kind
    return None


def resolve_data(data: Sequence[str | os.PathLike] | None, *, num_classes: int | None = None,
                 image_size: int = 224) -> DataSpec:
    """``data`` (None, one path, or several .tar paths) as a ``DataSpec``.

    None is the embedded default (made and cached on first use). A folder
    holding CIFAR files (or their cifar-10-batches-bin/-py, cifar-100-binary/
    -python subfolders) is CIFAR; a folder of .tar files (no subfolders) is
    WebDataset shards; any other folder must be an ImageNet class-folder
    root; a file is a DALI file list; .tar paths are WebDataset shards.
    ``num_classes`` defaults to 10/100 for CIFAR and 1000 (or the number of
    classes found, if more) for ImageNet. Errors (FileNotFoundError or
    ValueError) name the path; those about ``num_classes`` are tagged with
    that field (``gpumix.validation.field_of``), the others are about ``data``.
    """
    embedded = data is None
    paths = [default_data()] if data is None else [os.fspath(p) for p in data]
    if not paths:
        raise ValueError("data: no path given")
    for p in paths:
        if not os.path.exists(p):
            raise FileNotFoundError(f"data: {p} does not exist")
    if len(paths) > 1 or paths[0].endswith(".tar"):
        return _imagenet_spec(tuple(paths), data_source(paths), num_classes, image_size)
    path = paths[0]
    if os.path.isdir(path):
        kind = _cifar_kind(path)
        if kind is not None:
            k = NUM_CLASSES[kind]
            if num_classes is not None and num_classes < k:
                raise field_error(ValueError, "num_classes",
                                  f"{path} is {kind}, with {k} classes, but num_classes is {num_classes}")
            return DataSpec(kind, path, None, num_classes or k, CIFAR_SIZE)
        entries = os.listdir(path)
        tars = sorted(os.path.join(path, e) for e in entries if e.endswith(".tar"))
        if tars and not any(os.path.isdir(os.path.join(path, e)) for e in entries):
            return _imagenet_spec(tuple(tars), data_source(tars), num_classes, image_size)
        try:
            source = data_source(path)
        except ValueError as e:
            raise ValueError(f"{e}; nor is it a CIFAR folder (CIFAR files or a {', '.join(CIFAR_FOLDERS.values())} "
                             "subfolder)") from None
        return _imagenet_spec(path, source, num_classes, image_size, embedded=embedded)
    # a file list, checked: errors name its path and line
    return _imagenet_spec(path, data_source(path), num_classes, image_size)


def _imagenet_spec(data: str | tuple[str, ...], source: DataSource, num_classes: int | None, image_size: int,
                   embedded: bool = False) -> DataSpec:
    classes = source.num_classes
    if num_classes is not None and classes is not None and num_classes < classes:
        raise field_error(ValueError, "num_classes",
                          f"{data} has labels up to {classes - 1}, but num_classes is {num_classes}")
    k = num_classes or max(NUM_CLASSES["imagenet"], classes or 0)
    return DataSpec("imagenet", data, source, k, image_size, embedded)
