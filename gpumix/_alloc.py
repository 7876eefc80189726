"""Output allocation: large CPU outputs come from a pool of huge-page mappings.

A fresh 150 MB tensor costs about 40k page faults on first touch with 4 KiB
pages, several times the fused pass itself on a CPU. So CPU outputs of at
least one huge page are backed by anonymous mappings advised MADV_HUGEPAGE
(what torch's THP_MEM_ALLOC_ENABLE=1 does, but that variable is read once,
before gpumix is imported), and a mapping goes back to a small pool when the
last tensor using it is freed, so a training loop touches no fresh pages after
its first steps. A pooled mapping is reused only after every tensor and view
on it is gone: the tensor holds a numpy array that holds the mapping, and the
mapping returns to the pool when that array is finalized.
"""
import mmap
import threading
import weakref

import numpy as np
import torch

__all__ = ["empty_output"]

_HUGE_PAGE = 2 << 20
# Freed mappings kept for reuse, in bytes: room for a few ImageNet batches.
_POOL_LIMIT = 1 << 30

_lock = threading.Lock()
_free: dict[int, list[mmap.mmap]] = {}  # nbytes -> list of mmap objects no tensor uses
_free_bytes = 0


def _release(buf: mmap.mmap) -> None:
    # Runs as the last array on buf is finalized; past the limit, dropping the
    # reference unmaps buf once that array has let go of it.
    global _free_bytes
    with _lock:
        if _free_bytes + len(buf) <= _POOL_LIMIT:
            _free.setdefault(len(buf), []).append(buf)
            _free_bytes += len(buf)


def _mapping(nbytes: int) -> mmap.mmap:
    global _free_bytes
    with _lock:
        pooled = _free.get(nbytes)
        if pooled:
            _free_bytes -= nbytes
            return pooled.pop()
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf.madvise(mmap.MADV_HUGEPAGE)
    return buf


def empty_output(shape: tuple[int, int, int, int], dtype: torch.dtype, device: torch.device,
                 channels_last: bool) -> torch.Tensor:
    """Uninitialized tensor of logical ``shape`` (B, C, H, W): contiguous NCHW or channels_last.

    On the CPU, outputs of at least 2 MiB come from the huge-page pool;
    elsewhere, or where the platform lacks madvise, from ``torch.empty``.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    n, c, h, w = shape
    nbytes = n * c * h * w * torch.empty((), dtype=dtype).element_size()
    if device.type != "cpu" or nbytes < _HUGE_PAGE or not hasattr(mmap, "MADV_HUGEPAGE"):
        return torch.empty(shape, dtype=dtype, device=device, memory_format=fmt)
    buf = _mapping(nbytes)
    owner = np.frombuffer(buf, dtype=np.uint8)  # torch keeps this array alive as long as any view
    weakref.finalize(owner, _release, buf)
    flat = torch.from_numpy(owner).view(dtype)
    if channels_last:
        return flat.view(n, h, w, c).permute(0, 3, 1, 2)
    return flat.view(n, c, h, w)
