"""``njit_noalias``: ``numba.njit`` for the CPU twin's inner loops, with their array arguments declared not to alias.

LLVM vectorizes a loop that reads one array and writes another only after
runtime checks that the two do not overlap, since it cannot prove it. For a
loop over three output planes and two input rows that is about thirty
compare-and-branch pairs per call, and LLVM then keeps the vector loop for
calls of at least 32 (plain) or 40 (erased) pixels: shorter calls run scalar.
The twin calls such loops on short pieces of a row (``mix_normalize_cpu``), so
the checks and the scalar fallback cost it more than the loops themselves.

numba has the switch that removes them, its ``noalias`` compiler flag (the
flag ``numba.parfors`` sets for the gufuncs of ``prange`` loops when their
arrays do not alias), but no decorator option for it. This module is the one
place that reaches it, through ``numba.njit``'s documented
``pipeline_class`` hook: a compiler that copies the flags and sets it.
With it, each pointer argument (each array's data) is LLVM ``noalias``.

The contract, which the caller keeps: while such a function runs, no memory
that it writes through one array argument is read or written through
another (inputs may share memory with each other, they are only read).

If a numba release drops the flag, ``njit_noalias`` falls back to plain
``numba.njit``: the same results, with the runtime checks back
(``NOALIAS`` says which; tests/kernels/test_noalias.py fails on it).
"""
from collections.abc import Callable
from typing import Any

import numba
from numba.core import compiler

__all__ = ["NOALIAS", "njit_noalias"]

# Whether this numba has the flag (numba.core.compiler.Flags.noalias, present since numba's parfors).
NOALIAS = hasattr(compiler.Flags, "noalias")


class _NoAliasCompiler(compiler.Compiler):
    """numba's default compiler pipeline, on a copy of the flags with ``noalias`` set."""

    def __init__(self, typingctx: Any, targetctx: Any, library: Any, args: Any, return_type: Any, flags: Any,
                 locals: Any) -> None:
        flags = flags.copy()
        flags.noalias = True
        super().__init__(typingctx, targetctx, library, args, return_type, flags, locals)


def njit_noalias(fn: Callable[..., Any] | None = None, *, cache: bool = True) -> Any:
    """``numba.njit(cache=cache)`` whose array arguments are LLVM ``noalias`` (see the module's contract).

    Use as ``@njit_noalias`` or ``@njit_noalias(cache=False)``. Returns a numba dispatcher.
    """
    def decorate(f: Callable[..., Any]) -> Any:
        if NOALIAS:
            return numba.njit(cache=cache, pipeline_class=_NoAliasCompiler)(f)
        return numba.njit(cache=cache)(f)

    return decorate if fn is None else decorate(fn)
