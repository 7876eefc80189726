"""torch.distributed setup for the trainer: torchrun's environment in, (rank, world size, device) out.

One process without torchrun is rank 0 of 1 and starts no process group.
Under torchrun (``WORLD_SIZE`` > 1) the group uses NCCL on GPUs and gloo on
the CPU, and every collective gives up after ``timeout`` seconds, so a rank
that dies stops the others with an error instead of a hang.
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as torch_dist

__all__ = ["Dist", "setup", "teardown", "resolve_device", "world_size"]


class Dist:
    """Where this process sits: ``rank``, ``world_size``, ``local_rank`` and its ``device``."""

    def __init__(self, rank: int, world_size: int, local_rank: int, device: torch.device) -> None:
        self.rank, self.world_size, self.local_rank, self.device = rank, world_size, local_rank, device

    @property
    def is_main(self) -> bool:
        """Rank 0, the one that writes checkpoints, metrics and the run record."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one rank: a process group is up."""
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def world_size() -> int:
    """The number of ranks torchrun started (``WORLD_SIZE``), 1 without torchrun."""
    return _env_int("WORLD_SIZE", 1)


def resolve_device(requested: str, local_rank: int) -> torch.device:
    """torch.device for ``--device auto|cuda|cpu``: auto is cuda:local_rank when CUDA is usable, else cpu."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device: 'cuda' was asked for but CUDA is not usable here (use --device cpu)")
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"device: local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible)")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup(requested_device: str, timeout_s: float) -> Dist:
    """Read torchrun's RANK/WORLD_SIZE/LOCAL_RANK, pick the device and start the process group if needed."""
    rank, size = _env_int("RANK", 0), world_size()
    local_rank = _env_int("LOCAL_RANK", 0)
    device = resolve_device(requested_device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if size > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch_dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s),
                                device_id=device if device.type == "cuda" else None)
    return Dist(rank, size, local_rank, device)


def teardown(dist: Dist) -> None:
    """Destroy the process group ``setup`` started, if any."""
    if dist.distributed and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
