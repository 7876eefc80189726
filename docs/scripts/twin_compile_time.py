"""How long the CPU twin takes to compile: the first call of copies of it, each in a fresh numba cache.

    NUMBA_CACHE_DIR=$(mktemp -d) python docs/scripts/twin_compile_time.py NAME=DIR

``NAME=DIR`` imports module NAME from directory DIR: a copy of
``kernels/mix_normalize_cpu.py`` with ``cache=False`` (as ``erase_variants.py``
writes them; ``git show REV:kernels/mix_normalize_cpu.py`` for an older
twin). Each copy's first call, fp32 NCHW with 'pixel' erasing on 4 8x8
images (``erase_case.py``), compiles its float32 signature; the time printed is that call's.
One copy per process: run it once per copy, each with its own NUMBA_CACHE_DIR.
"""
import importlib
import sys
import time

import erase_case


def main() -> None:
    if len(sys.argv) != 2 or "=" not in sys.argv[1]:
        raise SystemExit(__doc__)
    name, path = sys.argv[1].split("=")
    sys.path.insert(0, path)
    twin = importlib.import_module(name)
    data = erase_case.case(4, 8, num_classes=10, prob=1.0)
    start = time.perf_counter()
    data.launch(twin, "pixel")
    print(f"{name}: first call (compiling the float32 signature) {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
