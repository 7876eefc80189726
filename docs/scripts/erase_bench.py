"""The CPU twin alone, with and without random erasing, paired in one process (docs/benchmarks.md, issue 15).

    python docs/scripts/erase_bench.py THREADS

B=256 random 224x224 images, fp32 NCHW, mixup alpha 0.2; no erasing, 'const'
at p = 0, 0.25 and 1, 'pixel' at p = 0.25 and 1; 15 interleaved rounds,
median and min per case, and each median against no erasing.
"""
import statistics
import sys
import time

import numba
import torch

import gpumix
from gpumix.datasets import STATS
from gpumix.kernels import arith
from gpumix.kernels import mix_normalize_cpu as cpu


def main() -> None:
    numba.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else numba.get_num_threads())
    n = 256
    torch.manual_seed(0)
    batch = torch.randint(0, 256, (n, 224, 224, 3), dtype=torch.uint8)
    labels = torch.randint(0, 1000, (n,))
    params = gpumix.Mixup(num_classes=1000, alpha=0.2, seed=0).sample(n, (224, 224), epoch=0, step=0)
    stats = STATS["imagenet"]
    inv_std = [1 / s for s in stats.std]
    out, targets = torch.empty(n, 3, 224, 224), torch.empty(n, 1000)
    boxes = params.boxes if params.boxes is not None else torch.zeros(n, 4, dtype=torch.int32)
    cases = {"none": None}
    for prob, mode in ((0.0, "const"), (0.25, "const"), (0.25, "pixel"), (1.0, "const"), (1.0, "pixel")):
        e = gpumix.RandomErasing(prob=prob, mode=mode, seed=0).sample(n, (224, 224), 3, epoch=0, step=0)
        cases[f"{mode} p={prob}"] = (e.boxes, e.colors, e.keys, e.noise)

    def run(erasing):
        cpu.launch(batch, labels, params.lam, params.index, boxes, stats.mean, inv_std, 0.0, arith.ENC_F32, out,
                   targets, erasing=erasing)

    for erasing in cases.values():
        run(erasing)
        run(erasing)
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(15):
        for key, erasing in cases.items():
            start = time.perf_counter()
            run(erasing)
            times[key].append(time.perf_counter() - start)
    base = statistics.median(times["none"])
    for key, values in times.items():
        median = statistics.median(values)
        extra = 100 * (median / base - 1)
        print(f"{key:14s} median {median * 1e3:7.2f} ms  min {min(values) * 1e3:7.2f}  {extra:+6.1f}%")


if __name__ == "__main__":
    main()
