"""What every loader under test shares: its settings (``LoaderSettings``) and its handle (``Variant``)."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import torch

from gpumix.validation import check_int

__all__ = ["ALPHA", "PREFETCH_DEPTH", "PREFETCH_FACTOR", "LoaderSettings", "Step", "Variant", "epoch_loop",
           "next_auto_reset"]

# Mixup's Beta(alpha, alpha) for every loader: timm's and DeiT's ImageNet recipes use 0.2 to 0.8.
ALPHA = 0.2
# DALI's prefetch depth in every DALI variant (gpumix's default).
PREFETCH_DEPTH = 2
# Batches each DataLoader worker keeps ready (torch's default prefetch_factor).
PREFETCH_FACTOR = 2

T = TypeVar("T")
# A started loader: step() delivers one training-ready batch and returns its number of images.
Step = Callable[[], int]


@dataclasses.dataclass(frozen=True)
class LoaderSettings:
    """What every loader shares: batch_size, threads (DALI threads = DataLoader workers = torch
    and numba threads), device ('cpu' or 'gpu') and seed."""

    batch_size: int
    threads: int
    device: str
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size, 1)
        check_int("threads", self.threads, 1)
        check_int("seed", self.seed, 0)
        if self.device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {self.device!r}")

    @property
    def torch_device(self) -> torch.device:
        return torch.device("cuda" if self.device == "gpu" else "cpu")


@dataclasses.dataclass
class Variant:
    """One loader under test, built by ``start()`` and released by ``close()``.

    key: short id (JSON); name: what it is, for tables; ready: batches it
    prepares ahead while nobody asks (the first ``ready + 1`` of a turn come
    from that stock, so they are not timed); build: returns ``(step, owner)``;
    torch_side: reads with worker processes (built before anything starts
    threads, since workers fork). After ``start()``, ``step()`` delivers one
    training-ready batch (images and targets) and returns how many images it held.
    """

    key: str
    name: str
    ready: int
    build: Callable[[], tuple[Step, Any]]
    torch_side: bool = False
    step: Step = dataclasses.field(default=lambda: _not_started())
    owner: Any = None

    def start(self) -> None:
        self.step, self.owner = self.build()

    def close(self) -> None:
        self.step, self.owner = _not_started, None


def _not_started() -> int:
    raise RuntimeError("this variant is not started (or closed): call start() first")


def next_auto_reset(iterator: Iterator[T]) -> T:
    """The next batch of a DALI iterator, which ends each epoch with StopIteration and goes on (auto reset)."""
    try:
        return next(iterator)
    except StopIteration:
        return next(iterator)


def epoch_loop(loader: Iterable[T]) -> tuple[Callable[[], T], dict[str, Iterator[T]]]:
    """(next_batch, state) over a DataLoader, starting the next epoch when one ends (workers persist)."""
    state = {"it": iter(loader)}

    def next_batch() -> T:
        try:
            return next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            return next(state["it"])
    return next_batch, state
