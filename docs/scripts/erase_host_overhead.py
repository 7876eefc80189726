"""The host's extra time of an erasing call: ``gpumix.mix_normalize`` with and without erasing on 8x8 images.

    python docs/scripts/erase_host_overhead.py

B=256 tiny images (``erase_case.py``, 'pixel' at p=0.25), so the kernel's work is small and the difference is mostly
the Python and numpy work around it (validation, argument conversion); 200
interleaved rounds, medians.
"""
import statistics
import time

import erase_case

import gpumix
from gpumix.datasets import STATS


def main() -> None:
    data = erase_case.case(256, 8)
    stats = STATS["imagenet"]
    calls = {
        "none": lambda: gpumix.mix_normalize(data.batch, data.labels, data.params, mean=stats.mean, std=stats.std,
                                             num_classes=1000),
        "erasing": lambda: gpumix.mix_normalize(data.batch, data.labels, data.params, mean=stats.mean,
                                                std=stats.std, num_classes=1000, erasing=data.erasing["pixel"]),
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
