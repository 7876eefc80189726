"""The memory one loader adds while it is built and warmed up: host RSS/PSS from /proc, GPU from cudaMemGetInfo."""
from __future__ import annotations

import os
from typing import Any, Literal

import torch

__all__ = ["GpuMemory", "HostMemory"]


def _status_kib(pid: str, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _children() -> set[str]:
    """Pids of this process's children (DataLoader workers), from /proc; empty where there is none."""
    me, found = str(os.getpid()), set[str]()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me:
            found.add(pid)
    return found


def _pss_kib(pid: str) -> int | None:
    # proportional set size: shared (copy-on-write) pages split between the processes sharing them
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return _status_kib(pid, "VmRSS")


class HostMemory:
    """The host memory one loader adds: the process's peak RSS while it is built and warmed up, above the
    RSS before, plus the proportional set size of the worker processes it started.

    ``added`` (bytes) is None where /proc cannot be read.
    """

    added: int | None

    def __enter__(self) -> HostMemory:
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                f.write("5")  # reset VmHWM, the peak RSS, to the current RSS
            self.peak_field = "VmHWM"
        except OSError:
            self.peak_field = "VmRSS"  # no reset: the RSS after warm-up is the best we have
        self.before = _status_kib("self", "VmRSS")
        self.children = _children()
        self.added = None
        return self

    def __exit__(self, *exc: Any) -> Literal[False]:
        peak = _status_kib("self", self.peak_field)
        if peak is None or self.before is None:
            return False
        workers = sum(_pss_kib(p) or 0 for p in _children() - self.children)
        self.added = 1024 * (max(0, peak - self.before) + workers)
        return False


class GpuMemory:
    """The GPU memory one loader adds while it is built and warmed up: the device's used memory
    (``cudaMemGetInfo``: DALI's pools and nvJPEG's buffers, torch's cache, everything) after, minus before.

    ``added`` is None without CUDA. Like host memory, memory that loaders
    share is counted for the first one that allocates it.
    """

    def __init__(self, cuda: bool) -> None:
        self.cuda: bool = cuda
        self.added: int | None = None

    @staticmethod
    def used() -> int:
        """Bytes of the current device's memory in use, by anyone."""
        torch.cuda.synchronize()
        free, total = torch.cuda.mem_get_info()
        return total - free

    def __enter__(self) -> GpuMemory:
        self.before = self.used() if self.cuda else None
        return self

    def __exit__(self, *exc: Any) -> Literal[False]:
        if self.cuda and exc[0] is None and self.before is not None:
            self.added = max(0, self.used() - self.before)
        return False
