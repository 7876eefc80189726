"""The host's extra time of an erasing call: ``gpumix.mix_normalize`` with and without erasing on 8x8 images.

    python docs/scripts/erase_host_overhead.py

B=256 tiny images, so the kernel's work is small and the difference is mostly
the Python and numpy work around it (validation, argument conversion); 200
interleaved rounds, medians.
"""
import statistics
import time

import torch

import gpumix
from gpumix.datasets import STATS


def main() -> None:
    n, size = 256, 8
    batch = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8)
    labels = torch.randint(0, 1000, (n,))
    params = gpumix.Mixup(num_classes=1000, alpha=0.2, seed=0).sample(n, (size, size), epoch=0, step=0)
    erasing = gpumix.RandomErasing(prob=0.25, mode="pixel", seed=0).sample(n, (size, size), 3, epoch=0, step=0)
    stats = STATS["imagenet"]
    calls = {
        "none": lambda: gpumix.mix_normalize(batch, labels, params, mean=stats.mean, std=stats.std, num_classes=1000),
        "erasing": lambda: gpumix.mix_normalize(batch, labels, params, mean=stats.mean, std=stats.std,
                                                num_classes=1000, erasing=erasing),
    }
    for fn in list(calls.values()) * 2:
        fn()
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(200):
        for key, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    none, erased = statistics.median(times["none"]), statistics.median(times["erasing"])
    print(f"none {none * 1e6:.1f} us, erasing {erased * 1e6:.1f} us: +{(erased - none) * 1e6:.1f} us")


if __name__ == "__main__":
    main()
