"""Erasing's cost in the CPU twin, for the twin here and for modified copies of it, in one process by turns.

    python docs/scripts/erase_pairs.py THREADS main [NAME=DIR ...]
    (in the environment: ROUNDS, the rounds, default 15; PROB, erasing's probability, default 0.25)

``main`` is this checkout's ``gpumix.kernels.mix_normalize_cpu``; ``NAME=DIR``
imports module NAME from directory DIR: a copy of the twin with one change
(``erase_variants.py`` writes them; docs/benchmarks.md, fourth and fifth
passes, names the copies compared). B=256 random 224x224 images, fp32 NCHW,
mixup alpha 0.2, preallocated outputs (``erase_case.py``); per round every module runs no
erasing, 'pixel' and 'const' at PROB (DeiT's 0.25 by default) back to back.
Prints each module's median times and the median of the per-round ratios
against no erasing (with quartiles for 'pixel'), then each case's best time:
two copies that differ in one constant ran their rows without erasing 8%
apart (docs/benchmarks.md, fifth pass), so compare copies by their times
too, not only by their ratios.
"""
import importlib
import os
import statistics
import sys
import time

import erase_case
import numba
import numpy as np


def main() -> None:
    numba.set_num_threads(int(sys.argv[1]))
    modules = {}
    for spec in sys.argv[2:]:
        if spec == "main":
            from gpumix.kernels import mix_normalize_cpu as module
        else:
            name, path = spec.split("=")
            sys.path.insert(0, path)
            module = importlib.import_module(name)
            sys.path.pop(0)
            spec = name
        modules[spec] = module
    data = erase_case.case(256, 224, prob=float(os.environ.get("PROB", "0.25")))
    cases = list(data.erasing)

    for module in modules.values():  # compile and warm up
        for case in cases:
            data.launch(module, case)
            data.launch(module, case)
    times: dict[tuple[str, str], list[float]] = {(m, c): [] for m in modules for c in cases}
    for _ in range(int(os.environ.get("ROUNDS", "15"))):
        for name, module in modules.items():
            for case in cases:
                start = time.perf_counter()
                data.launch(module, case)
                times[name, case].append(time.perf_counter() - start)
    for name in modules:
        none = times[name, "none"]
        const = [c / b - 1 for c, b in zip(times[name, "const"], none)]
        pixel = [p / b - 1 for p, b in zip(times[name, "pixel"], none)]
        print(f"{name:10s} none {statistics.median(none) * 1e3:6.2f} ms  const {100 * statistics.median(const):+5.1f}%"
              f"  pixel {100 * statistics.median(pixel):+5.1f}% (quartiles {100 * np.quantile(pixel, 0.25):+5.1f} "
              f"to {100 * np.quantile(pixel, 0.75):+5.1f})")
        best = {case: min(times[name, case]) * 1e3 for case in cases}
        print(f"{'':10s} best none {best['none']:6.2f} ms  const {best['const']:6.2f} ms  "
              f"pixel {best['pixel']:6.2f} ms")


if __name__ == "__main__":
    main()
