"""Kernels of gpumix, installed as ``gpumix.kernels``.

- ``arith``: per-element arithmetic shared by both kernels.
- ``mix_normalize_cuda``: the fused Numba CUDA kernels (one per ``Variant``) and their launch wrapper.
- ``ptx``: the PTX instructions they need that numba does not emit (vector stores, ``cvt.rn``).
- ``mix_normalize_cpu``: its ``numba.njit(parallel=True)`` CPU twin.
- ``noalias``: ``njit_noalias``, numba's ``noalias`` flag for the twin's loops (the one reach into numba's internals).
- ``noise``: the pixel noise's table.
- ``reference``: the plain-torch float64 reference both are tested against.

Importing this package imports none of them (and so neither numba nor CUDA).
"""
__all__ = ["arith", "mix_normalize_cpu", "mix_normalize_cuda", "noalias", "noise", "ptx", "reference"]
