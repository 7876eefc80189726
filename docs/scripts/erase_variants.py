"""Write modified copies of the CPU twin, one change each, for ``erase_pairs.py`` to time against it.

    python docs/scripts/erase_variants.py OUTDIR
    PROB=1 ROUNDS=61 python docs/scripts/erase_pairs.py 1 same_source=OUTDIR/same_source NAME=OUTDIR/NAME ...

Each copy is ``kernels/mix_normalize_cpu.py`` as of commit ``1eb272a`` (the
twin the fifth pass measured, read with ``git show``: the sixth pass's
direct path for one-box rows changed the code these edits apply to) with
``cache=False`` and one textual change, written to ``OUTDIR/NAME/NAME.py``
(import name NAME). Compare them with ``same_source`` (that twin unchanged),
not with ``main``. They are measuring instruments, not candidates: some give
wrong outputs on purpose (docs/benchmarks.md, fifth pass, quotes what they
measured).

- ``same_source``: no change (the control: the same source compiled again).
- ``cut_plain``: a crossed row is cut, then written as one plain row (the cut's cost).
- ``pieces_mix``: the pieces are cut and written, every one by the mixing loop (the erased loops' cost).
- ``hot16k``, ``table14``, ``table15``: every noise run starts in the table's first 2**12, 2**14 or 2**15
  values (a table that stays in cache, at the price of more overlapping runs).
- ``bf16_planar``: the planar table stored as bf16 bits, widened in the loops (half its bytes).
- ``prefetch_next``, ``prefetch_row``: software prefetch (``llvm.prefetch``) of the next row's noise runs at
  the start of a row, or of the row's own runs before its cut.
"""
import os
import re
import subprocess
import sys
from collections.abc import Callable

REVISION = "1eb272a"
SOURCE = f"{REVISION}:kernels/mix_normalize_cpu.py"

_PIECE = "        lo, hi, fi, fj = pieces[p, _LO], pieces[p, _HI], pieces[p, _FI], pieces[p, _FJ]\n"
_CUT = "    count = _cut(pieces, cuts, b, j, h, width, xs, xe, eboxes)\n"
_ROWS = "        oi = arith.noise_row(ekeys[b], h)\n        oj = arith.noise_row(ekeys[j], h)\n"
_LOOPS = "# ---- the loops of a crossed row's pieces"
_CROSSED = "# ---- rows an erasing box crosses"
_ROW_START = "            b = row // height\n"

_PREFETCH = '''
from llvmlite import ir as _ir
from numba.core import cgutils, types
from numba.extending import intrinsic


@intrinsic
def _prefetch(typingctx, arr, idx):
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        i32 = _ir.IntType(32)
        fnty = _ir.FunctionType(_ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])  # read, keep in all levels, data
        return context.get_dummy_value()
    return sig, codegen


@numba.njit(inline="always")
def _prefetch_row(table, eboxes, ekeys, erows, s, h):
    # every 64-byte line of the planar table's runs under sample s's boxes that cross row h
    if erows[s, 0] <= h and h < erows[s, 1]:
        row = _U32(table.size // 3)
        o = arith.noise_row(ekeys[s], h)
        for k in range(eboxes.shape[1]):
            if eboxes[s, k, 0] <= h and h < eboxes[s, k, 2]:
                for c in range(3):
                    q = _plane_start(o, c, row)
                    for w in range(eboxes[s, k, 1], eboxes[s, k, 3] + 16, 16):
                        _prefetch(table, _U64(q) + _U64(w))

'''


def _replace(source: str, old: str, new: str) -> str:
    if old not in source:
        raise SystemExit(f"the twin has changed: {old.strip()!r} not found in {SOURCE}")
    return source.replace(old, new)


def _cut_plain(s: str) -> str:
    plain = ("    if f32 and count > 0:\n"
             "        o = _U64(b * 3 * height * width + h * width)\n"
             "        p = _U64(height * width)\n"
             "        _planes3(dst[o:][:width], dst[o + p:][:width], dst[o + p + p:][:width], si, sj, xs, xe, w_in,\n"
             "                 w_out, mean[0], mean[1], mean[2], inv_std[0], inv_std[1], inv_std[2])\n"
             "        return\n")
    return _replace(s, _CUT, _CUT + plain)


def _mask(bits: int) -> Callable[[str], str]:
    def change(s: str) -> str:
        m = (1 << bits) - 1
        return _replace(s, _ROWS, f"        oi = arith.noise_row(ekeys[b], h) & _U32({m})\n"
                                  f"        oj = arith.noise_row(ekeys[j], h) & _U32({m})\n")
    return change


def _bf16_planar(s: str) -> str:
    s = _replace(s, _LOOPS, '@numba.njit(inline="always")\ndef _bf(x):\n'
                            '    return np.uint32(np.uint32(x) << np.uint32(16)).view(np.float32)\n\n\n' + _LOOPS)
    for fn in ("_erased_i3", "_erased_j3", "_erased_ij3", "_fill3"):
        start = s.index(f"def {fn}(")
        end = s.index("\n\n\n", start)
        s = s[:start] + re.sub(r"t\[([a-z0-9]+ \+ w)\]", r"_bf(t[\1])", s[start:end]) + s[end:]
    return _replace(s, "    table = np.ascontiguousarray(rows).reshape(-1)\n",
                    "    table = (np.ascontiguousarray(rows).reshape(-1).view(np.uint32) >> 16).astype(np.uint16)\n")


def _prefetch_next(s: str) -> str:
    s = _replace(s, _CROSSED, _PREFETCH + "\n" + _CROSSED)
    return _replace(s, _ROW_START, "            nxt = row + 1\n"
                                   "            if noise and nxt < (chunk + 1) * rows // chunks:\n"
                                   "                b2 = nxt // height\n"
                                   "                h2 = nxt - b2 * height\n"
                                   "                _prefetch_row(table, eboxes, ekeys, erows, b2, h2)\n"
                                   "                _prefetch_row(table, eboxes, ekeys, erows, index[b2], h2)\n"
                    + _ROW_START)


def _prefetch_own(s: str) -> str:
    s = _replace(s, _CROSSED, _PREFETCH + "\n" + _CROSSED)
    s = _replace(s, _CUT, "    if noise and mean.size == 3 and not nhwc:\n"
                          "        _prefetch_row(table, eboxes, ekeys, erows, b, h)\n"
                          "        _prefetch_row(table, eboxes, ekeys, erows, j, h)\n" + _CUT)
    s = _replace(s, "eboxes, ecolors, colors_k, ekeys, noise, table, work):\n",
                 "eboxes, ecolors, colors_k, ekeys, noise, table, work, erows):\n")
    return s.replace("ekeys, noise, table, work)\n", "ekeys, noise, table, work, erows)\n")


VARIANTS: dict[str, Callable[[str], str]] = {
    "same_source": lambda s: s,
    "cut_plain": _cut_plain,
    "pieces_mix": lambda s: _replace(s, _PIECE, _PIECE + "        fi = 0\n        fj = 0\n"),
    "hot16k": _mask(12),
    "table14": _mask(14),
    "table15": _mask(15),
    "bf16_planar": _bf16_planar,
    "prefetch_next": _prefetch_next,
    "prefetch_row": _prefetch_own,
}


def main() -> None:
    out = sys.argv[1]
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    source = subprocess.run(["git", "-C", root, "show", SOURCE], check=True, capture_output=True,
                            text=True).stdout.replace("cache=True", "cache=False")
    for name, change in VARIANTS.items():
        os.makedirs(os.path.join(out, name), exist_ok=True)
        with open(os.path.join(out, name, f"{name}.py"), "w") as f:
            f.write(change(source))
        print(os.path.join(out, name))


if __name__ == "__main__":
    main()
