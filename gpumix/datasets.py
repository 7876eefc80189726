"""gpumix's one owner of dataset knowledge: per-channel statistics, class counts, and what ``data`` names.

- ``STATS[name]``: the normalization ``Stats`` (mean, std in pixel units 0-255)
  of 'imagenet', 'cifar10' and 'cifar100'.
- ``NUM_CLASSES[name]``: their class counts.
- ``data_source(data)``: a ``DataSource`` saying what an ImageNet-style
  ``data`` argument is (a class-folder root, a DALI file list or WebDataset
  shards), checked, with its class count where the data tells it.

It imports neither DALI nor torch itself; the pipelines, the trainer, the benchmark
and the tools all take these from here.
"""
import dataclasses
import enum
import os
from collections.abc import Sequence

from gpumix.file_list import check_file_list

__all__ = ["CIFAR_COARSE_CLASSES", "CIFAR_DATASETS", "CIFAR_FILES", "CIFAR_FOLDERS", "CIFAR_FORMATS",
           "CIFAR_IMAGE_BYTES", "CIFAR_SIZE", "DATASETS", "NUM_CLASSES", "STATS", "DataSource", "SourceKind", "Stats",
           "data_source", "existing_path"]


@dataclasses.dataclass(frozen=True)
class Stats:
    """Per-channel (R, G, B) mean and standard deviation, in pixel units (0-255)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


STATS = {
    # torchvision's ImageNet statistics (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225) times 255
    "imagenet": Stats((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
    # the CIFAR training sets' own statistics (50,000 images each), as the mixup paper's CIFAR code normalizes
    "cifar10": Stats((125.307, 122.95, 113.865), (62.993, 62.089, 66.705)),
    "cifar100": Stats((129.304, 124.07, 112.434), (68.17, 65.392, 70.418)),
}
NUM_CLASSES = {"imagenet": 1000, "cifar10": 10, "cifar100": 100}
DATASETS = tuple(STATS)
CIFAR_DATASETS = ("cifar10", "cifar100")

# CIFAR on disk, as the official archives lay it out (https://www.cs.toronto.edu/~kriz/cifar.html): 32x32 RGB
# images stored as R, G, B planes; CIFAR-100 also labels 20 coarse superclasses. 'binary' is the C version
# (a record: the label byte(s), then the pixels), 'python' the pickled dicts torchvision downloads.
CIFAR_SIZE = 32
CIFAR_IMAGE_BYTES = 3 * CIFAR_SIZE * CIFAR_SIZE
CIFAR_COARSE_CLASSES = 20
CIFAR_FORMATS = ("binary", "python")
CIFAR_FOLDERS = {
    ("cifar10", "binary"): "cifar-10-batches-bin", ("cifar10", "python"): "cifar-10-batches-py",
    ("cifar100", "binary"): "cifar-100-binary", ("cifar100", "python"): "cifar-100-python",
}
CIFAR_FILES = {
    ("cifar10", "binary"): {"train": [f"data_batch_{k}.bin" for k in range(1, 6)], "test": ["test_batch.bin"]},
    ("cifar10", "python"): {"train": [f"data_batch_{k}" for k in range(1, 6)], "test": ["test_batch"]},
    ("cifar100", "binary"): {"train": ["train.bin"], "test": ["test.bin"]},
    ("cifar100", "python"): {"train": ["train"], "test": ["test"]},
}


class SourceKind(str, enum.Enum):
    """What an ImageNet-style ``data`` argument is."""

    FOLDER = "folder"  # ILSVRC layout: root/<class>/<image>, labels by sorted folder name
    FILE_LIST = "file_list"  # a DALI file list (gpumix.file_list's convention)
    WEBDATASET = "webdataset"  # .tar shards, each with its DALI .idx index beside it


@dataclasses.dataclass(frozen=True)
class DataSource:
    """A checked ImageNet-style source.

    kind: a ``SourceKind``; paths: (root,) for a folder, (list,) for a file
    list, the shards for WebDataset; index_files: the shards' ``.idx`` files
    (empty otherwise); num_classes: the class folders, the file list's largest
    label + 1, or None for shards (which carry no class count).
    """

    kind: SourceKind
    paths: tuple[str, ...]
    index_files: tuple[str, ...] = ()
    num_classes: int | None = None

    @property
    def path(self) -> str:
        """The folder or file list (the first shard for WebDataset)."""
        return self.paths[0]

    def describe(self) -> str:
        """One line saying what is read, from where."""
        if self.kind is SourceKind.WEBDATASET:
            return f"WebDataset, {len(self.paths)} shard(s): {', '.join(self.paths)}"
        return f"{'file list' if self.kind is SourceKind.FILE_LIST else 'class-folder root'} {self.path}"


def existing_path(name: str, path: object) -> str:
    """``path`` as a str; TypeError if it is not a path, FileNotFoundError naming it if it does not exist."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: {path} does not exist")
    return path


def data_source(data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> DataSource:
    """Classify and check ``data``: a class-folder root, a DALI file list, or a list of WebDataset shards.

    A file list is checked line by line (``check_file_list``). Errors name
    the path (and start with ``data:``, the builders' argument): a missing or
    empty folder, a folder without class subfolders, an empty file list or a
    bad line of one (``path:line``), a shard that is not ``.tar`` or lacks
    its index.
    """
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError("data: the list of WebDataset shards is empty")
        tars, indexes = [], []
        for shard in data:
            shard = existing_path("data", shard)
            if not shard.endswith(".tar"):
                raise ValueError(f"data: WebDataset shards must be .tar files, got {shard}")
            index = shard[:-4] + ".idx"
            if not os.path.isfile(index):
                raise FileNotFoundError(f"data: WebDataset shard {shard} has no index {index} "
                                        "(make one with DALI's wds2idx)")
            tars.append(shard)
            indexes.append(index)
        return DataSource(SourceKind.WEBDATASET, tuple(tars), tuple(indexes))
    path = existing_path("data", data)
    if os.path.isfile(path):
        if os.path.getsize(path) == 0:
            raise ValueError(f"data: the file list {path} is empty")
        return DataSource(SourceKind.FILE_LIST, (path,), num_classes=check_file_list(path)[1] + 1)
    entries = os.listdir(path)
    if not entries:
        raise ValueError(f"data: the folder {path} is empty")
    classes = [e for e in entries if os.path.isdir(os.path.join(path, e))]
    if not classes:
        raise ValueError(f"data: the folder {path} has no class subfolders (expected ILSVRC's root/<class>/<image>)")
    return DataSource(SourceKind.FOLDER, (path,), num_classes=len(classes))
