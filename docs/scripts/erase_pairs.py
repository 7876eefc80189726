"""Erasing's cost in the CPU twin, for the twin here and for modified copies of it, in one process by turns.

    python docs/scripts/erase_pairs.py THREADS main [NAME=DIR ...]
    (in the environment: ROUNDS, the rounds, default 15; PROB, erasing's probability, default 0.25)

``main`` is this checkout's ``gpumix.kernels.mix_normalize_cpu``; ``NAME=DIR``
imports module NAME from directory DIR: a copy of the twin with one change
(``erase_variants.py`` writes them; docs/benchmarks.md, fourth and fifth
passes, names the copies compared). B=256 random 224x224 images, fp32 NCHW,
mixup alpha 0.2, preallocated outputs; per round every module runs no
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

import numba
import numpy as np
import torch

import gpumix
from gpumix.datasets import STATS
from gpumix.kernels import arith


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
    n, size = 256, 224
    torch.manual_seed(0)
    batch = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8)
    labels = torch.randint(0, 1000, (n,))
    params = gpumix.Mixup(num_classes=1000, alpha=0.2, seed=0).sample(n, (size, size), epoch=0, step=0)
    stats = STATS["imagenet"]
    inv_std = [1 / s for s in stats.std]
    out, targets = torch.empty(n, 3, size, size), torch.empty(n, 1000)
    boxes = torch.zeros(n, 4, dtype=torch.int32)
    cases = {"none": None}
    prob = float(os.environ.get("PROB", "0.25"))
    for mode in ("pixel", "const"):
        e = gpumix.RandomErasing(prob=prob, mode=mode, seed=0).sample(n, (size, size), 3, epoch=0, step=0)
        cases[mode] = (e.boxes, e.colors, e.keys, e.noise)

    def run(module, erasing):
        module.launch(batch, labels, params.lam, params.index, boxes, stats.mean, inv_std, 0.0, arith.ENC_F32, out,
                      targets, erasing=erasing)

    for module in modules.values():  # compile and warm up
        for erasing in cases.values():
            run(module, erasing)
            run(module, erasing)
    times: dict[tuple[str, str], list[float]] = {(m, c): [] for m in modules for c in cases}
    for _ in range(int(os.environ.get("ROUNDS", "15"))):
        for name, module in modules.items():
            for case, erasing in cases.items():
                start = time.perf_counter()
                run(module, erasing)
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
