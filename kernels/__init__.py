"""Kernels of gpumix, installed as ``gpumix.kernels``.

- ``arith``: per-element arithmetic shared by both kernels.
- ``mix_normalize_cuda``: the fused Numba CUDA kernel and its launch wrapper.
- ``mix_normalize_cpu``: its ``numba.njit(parallel=True)`` CPU twin.
- ``reference``: the plain-torch float64 reference both are tested against.

Importing this package imports none of them (and so neither numba nor CUDA).
"""
__all__ = ["arith", "mix_normalize_cpu", "mix_normalize_cuda", "reference"]
