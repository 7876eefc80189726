"""Registers, spill stores and SASS lines of the fused kernel's erase variants (sm_90), compiled as
gpumix-kernel-report compiles its variants (numba PTX, the newest ptxas, cuobjdump); no GPU needed.

    python docs/scripts/erase_registers.py
"""
import json
import re
import tempfile

from gpumix.kernels.mix_normalize_cuda import Variant
from gpumix.tools import kernel_report as kr


def main() -> None:
    tc = kr.find_toolchain()
    rows = {}
    with tempfile.TemporaryDirectory() as d:
        for erase in ("color", "pixel"):
            for dtype, cl in (("float32", False), ("bfloat16", True)):
                for wide in (True, False):
                    v = Variant(dtype=dtype, channels_last=cl, erase=erase, wide=wide)
                    ptx, log, sass = kr.compile_variant(v, "sm_90", tc, d)
                    regs = re.search(r"Used (\d+) registers", log).group(1)
                    spill = re.search(r"(\d+) bytes spill stores", log).group(1)
                    rows[v.name] = {"registers": int(regs), "spill_stores": int(spill),
                                    "sass_lines": len(kr.parse_sass(sass))}
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
