"""Erasing's cost in the CPU twin for several chunk counts, by turns in one process (docs/benchmarks.md, seventh pass).

    python docs/scripts/twin_chunks.py THREADS PER_THREAD [PER_THREAD ...]     (ROUNDS in the environment, default 41)

``launch`` splits the rows into ``8 * numba.get_num_threads()`` chunks; here the twin module's ``numba`` is
swapped for a stand-in whose ``get_num_threads`` makes that PER_THREAD chunks per thread, so every setting
runs the same compiled code. Preallocated outputs (``erase_case.py``), fp32 NCHW, no erasing and 'pixel' at
p=0.25 back to back, alternating which goes first. Prints each setting's median and best times and the
median of the per-round cost of 'pixel' over none.
"""
import os
import statistics
import sys
import time
import types

import erase_case
import numba

from gpumix.kernels import mix_normalize_cpu as twin


def _stand_in(per_thread: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(get_num_threads=lambda: per_thread * numba.get_num_threads() // 8,
                                 get_parallel_chunksize=numba.get_parallel_chunksize,
                                 set_parallel_chunksize=numba.set_parallel_chunksize)


def main() -> None:
    numba.set_num_threads(int(sys.argv[1]))
    settings = [int(a) for a in sys.argv[2:]]
    data = erase_case.case(256, 224)
    times: dict[tuple[int, str], list[float]] = {(s, m): [] for s in settings for m in ("none", "pixel")}
    try:
        for s in settings:  # compile and warm up
            twin.numba = _stand_in(s)
            data.launch(twin, "none")
            data.launch(twin, "pixel")
        for r in range(int(os.environ.get("ROUNDS", "41"))):
            for s in settings if r % 2 == 0 else settings[::-1]:
                twin.numba = _stand_in(s)
                for mode in ("none", "pixel") if r % 2 == 0 else ("pixel", "none"):
                    start = time.perf_counter()
                    data.launch(twin, mode)
                    times[(s, mode)].append(time.perf_counter() - start)
    finally:
        twin.numba = numba
    for s in settings:
        none, pixel = times[(s, "none")], times[(s, "pixel")]
        cost = statistics.median(p / n - 1 for p, n in zip(pixel, none))
        print(f"{s:3d} chunks/thread: none {1e3 * statistics.median(none):.2f} ms (best {1e3 * min(none):.2f}) "
              f"pixel {1e3 * statistics.median(pixel):.2f} (best {1e3 * min(pixel):.2f}) "
              f"cost median {100 * cost:+.1f}%")


if __name__ == "__main__":
    main()
