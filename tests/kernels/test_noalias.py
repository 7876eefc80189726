"""``njit_noalias``: the array arguments of the twin's loops are LLVM ``noalias``, and the loops still compute right."""
import numba
import numpy as np

from gpumix.kernels import noalias


def _blend(d, a, b, w):
    # the shape of the twin's loops: read two arrays, write a third
    for k in range(d.size):
        d[k] = b[k] + w * (a[k] - b[k])


def _signature(dispatcher, *args):
    # the LLVM definition line of the compiled function (the first "define" is the numba function itself)
    dispatcher(*args)
    ir = next(iter(dispatcher.inspect_llvm().values()))
    return next(line for line in ir.splitlines() if line.startswith("define") and "_blend" in line)


def test_this_numba_has_the_flag():
    # Without it the twin falls back to plain njit: right, but the short loops of erased rows run scalar.
    assert noalias.NOALIAS


def test_array_data_is_noalias_only_under_njit_noalias():
    rng = np.random.default_rng(0)
    d, a, b = (rng.standard_normal(37).astype(np.float32) for _ in range(3))
    w = np.float32(0.3)
    fast = _signature(noalias.njit_noalias(cache=False)(_blend), d, a, b, w)
    plain = _signature(numba.njit(cache=False)(_blend), d, a, b, w)
    # argument .4 of an array is its data pointer
    for name in ("d", "a", "b"):
        assert f"noalias captures(none) %arg.{name}.4" in fast.replace("writeonly ", "").replace("readonly ", "")
        assert f"noalias captures(none) %arg.{name}.4" not in plain.replace("writeonly ", "").replace("readonly ", "")


def test_loops_compute_the_same_values():
    rng = np.random.default_rng(1)
    blend = noalias.njit_noalias(cache=False)(_blend)
    for n in (1, 7, 8, 9, 31, 33, 1000):
        a, b = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
        w = np.float32(rng.random())
        got, expected = np.empty(n, np.float32), np.empty(n, np.float32)
        blend(got, a, b, w)
        _blend(expected, a, b, w)
        np.testing.assert_array_equal(got, expected)
