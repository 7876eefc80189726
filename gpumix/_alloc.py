"""Output allocation: CPU tensors of 2 MiB or more are backed by transparent huge pages.

A fresh 150 MB tensor costs about 40k page faults on first touch with 4 KiB
pages, several times the fused pass itself on a CPU; with huge pages it is
about 75 faults. This is what torch's own THP_MEM_ALLOC_ENABLE=1 does, but
that variable is read once per process, before gpumix is imported.
"""
import mmap

import torch

__all__ = ["empty_output"]

_HUGE_PAGE = 2 << 20


def empty_output(shape, dtype, device, channels_last):
    """Uninitialized tensor of logical ``shape`` (B, C, H, W); contiguous NCHW or channels_last.

    On the CPU, memory of at least one huge page comes from an anonymous
    private mapping advised MADV_HUGEPAGE (freed with the tensor); elsewhere,
    or where the platform lacks madvise, it is ``torch.empty``.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    n, c, h, w = shape
    count = n * c * h * w
    nbytes = count * torch.empty((), dtype=dtype).element_size()
    if device.type != "cpu" or nbytes < _HUGE_PAGE or not hasattr(mmap, "MADV_HUGEPAGE"):
        return torch.empty(shape, dtype=dtype, device=device, memory_format=fmt)
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf.madvise(mmap.MADV_HUGEPAGE)
    flat = torch.frombuffer(buf, dtype=dtype, count=count)  # holds a reference to buf
    if channels_last:
        return flat.view(n, h, w, c).permute(0, 3, 1, 2)
    return flat.view(n, c, h, w)
