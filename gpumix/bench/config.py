"""The validated settings of one ``gpumix-bench`` run (``BenchConfig``); each field is also its CLI flag."""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from gpumix.bench.fields import field_error, option, validate
from gpumix.device import gpu_problem, resolve_device
from gpumix.validation import check_bool, check_float, check_int

__all__ = ["BenchConfig", "DEVICES", "check_device", "usable_cores"]

DEVICES = ("auto", "gpu", "cpu")


def usable_cores() -> int:
    """The cores this process may run on (its affinity on Linux), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_device(name: str, value: Any) -> str:
    """'auto', 'gpu' or 'cpu'; 'gpu' only where the GPU path can run (the error says what is missing)."""
    if value not in DEVICES:
        raise ValueError(f"{name} must be 'auto', 'gpu' or 'cpu', got {value!r}")
    if value == "gpu" and gpu_problem() is not None:
        raise ValueError(f"{name} 'gpu' cannot run on this machine: {gpu_problem()}")
    return value


def _int_at_least(minimum: int, optional: bool = False):
    def check(name: str, value: Any) -> int | None:
        return None if optional and value is None else check_int(name, value, minimum)
    return check


def _positive_seconds(name: str, value: Any) -> float:
    value = check_float(name, value, 0.0, float("inf"))
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def _paths(name: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)) or not all(isinstance(p, (str, os.PathLike)) for p in value):
        raise TypeError(f"{name} must be None or a sequence of paths, got {value!r}")
    return tuple(os.fspath(p) for p in value)


def _output_path(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be None or a path, got {value!r}")
    value = os.fspath(value)
    folder = os.path.dirname(os.path.abspath(value))
    if not os.path.isdir(folder):
        raise field_error(ValueError, name, f"the folder {folder} does not exist (for {value})")
    return value


def _policies(name: str, value: Any) -> tuple[str, ...]:
    from gpumix.pipelines.auto_augment import POLICIES

    policies = () if value is None else value
    if isinstance(policies, str) or any(p not in POLICIES for p in policies) or len(set(policies)) < len(policies):
        raise ValueError(f"{name} must be distinct names among {', '.join(POLICIES)}, got {value!r}")
    return tuple(policies)


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Settings of one ``gpumix-bench`` run; ``__post_init__`` checks every field, naming it.

    Each field's meaning is its ``help`` (``gpumix-bench --help`` shows them).
    """

    data: tuple[str, ...] | None = option(
        None, "ImageNet class-folder root, DALI file list, WebDataset .tar shards (their .idx beside them) or a "
        "folder of them, or a CIFAR-10/100 folder (default: a cached synthetic ImageNet-like set)",
        check=_paths, nargs="+", metavar="PATH")
    device: str = option("auto", "where the loaders and the operator run: auto (the GPU if usable), gpu or cpu",
                         check=check_device, choices=DEVICES)
    batch_size: int | None = option(None, "images per batch for every loader (default: 256 GPU, 64 CPU)",
                                    check=_int_at_least(1, optional=True), type=int)
    seconds: float = option(2.0, "timed seconds per turn", check=_positive_seconds, type=float)
    repeats: int = option(7, "interleaved rounds for the loaders, timed calls for the operator",
                          check=_int_at_least(1), type=int)
    warmup: int = option(10, "untimed batches per loader after building it (and, up to 2, untimed calls per "
                         "operator variant)", check=_int_at_least(0), type=int)
    threads: int = option(0, "DALI threads, DataLoader workers, torch and numba threads (0: the usable cores)",
                          check=_int_at_least(0), type=int)
    image_size: int = option(224, "crop side of the ImageNet loaders and the operator's image side (CIFAR: 32)",
                             check=_int_at_least(8), type=int)
    operator_batch_size: int = option(256, "images per call in the operator section", check=_int_at_least(1),
                                      type=int)
    num_classes: int | None = option(None, "K of the targets (default: 1000 ImageNet, 10/100 CIFAR)",
                                     check=_int_at_least(2, optional=True), type=int)
    seed: int = option(0, "seed of every loader's shuffling and mixing", check=_int_at_least(0), type=int)
    auto_augment: tuple[str, ...] = option(
        (), "also time gpumix with these DALI auto-augment policies in its pipeline (randaugment, trivialaugment, "
        "autoaugment) and report the cost per image of each", check=_policies, nargs="+", metavar="POLICY")
    json: str | None = option(None, "write the report (figures and run record) here", check=_output_path,
                              metavar="PATH")
    plot: str | None = option(None, "draw the figures as a PNG bar chart here", check=_output_path, metavar="PATH")
    progress: bool = option(True, "progress bars on stderr", check=check_bool)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def gpu(self) -> bool:
        """Whether this run uses the GPU ('auto' resolved)."""
        return resolve_device(self.device) == "gpu"
