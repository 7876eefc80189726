"""The operator as users call it, with this checkout's CPU twin and with an old copy of it, in one process by turns.

    python docs/scripts/twin_operator_ab.py THREADS DIR MODULE     (ROUNDS in the environment, default 101)

DIR/MODULE.py: a copy of an older ``kernels/mix_normalize_cpu.py`` (``git show REV:kernels/mix_normalize_cpu.py
| sed 's/cache=True/cache=False/g'``). Each call is ``gpumix.mix_normalize`` (outputs allocated per call) on
``erase_case.py``'s batch, without erasing and with 'pixel' at p=0.25; the twin is chosen by swapping
``sys.modules["gpumix.kernels.mix_normalize_cpu"]``, which ``gpumix.ops`` imports the twin through. The
rounds alternate which twin and which case go first. Prints each twin's median and best times, erasing's
cost over none, and new over old round by round, each a median with its 95% interval
(``gpumix.bench.harness.median_interval``). docs/benchmarks.md, eighth pass on erasing.
"""
import importlib
import os
import statistics
import sys
import time

import erase_case
import numba

import gpumix
from gpumix.bench.harness import median_interval
from gpumix.datasets import STATS
from gpumix.kernels import mix_normalize_cpu as new

_KEY = "gpumix.kernels.mix_normalize_cpu"
_MODES = ("none", "pixel")


def _show(name: str, ratios: list[float]) -> None:
    lo, hi = median_interval(ratios, 0.95)
    interval = "" if lo is None else f" (95% interval {100 * lo:+.1f} to {100 * hi:+.1f})"
    print(f"{name}: median {100 * statistics.median(ratios):+.1f}%{interval}")


def main() -> None:
    numba.set_num_threads(int(sys.argv[1]))
    sys.path.insert(0, sys.argv[2])
    old = importlib.import_module(sys.argv[3])
    sys.path.pop(0)
    stats = STATS["imagenet"]
    data = erase_case.case(256, 224)

    def call(module, mode):
        sys.modules[_KEY] = module
        try:
            gpumix.mix_normalize(data.batch, data.labels, data.params, mean=stats.mean, std=stats.std,
                                 num_classes=1000, erasing=data.erasing[mode])
        finally:
            sys.modules[_KEY] = new

    sides = {"new": new, "old": old}
    for module in sides.values():  # compile and warm up
        for mode in _MODES:
            call(module, mode)
            call(module, mode)
    times: dict[tuple[str, str], list[float]] = {(s, m): [] for s in sides for m in _MODES}
    for r in range(int(os.environ.get("ROUNDS", "101"))):
        names = ("new", "old") if r % 2 == 0 else ("old", "new")
        modes = _MODES if (r // 2) % 2 == 0 else _MODES[::-1]
        for s in names:
            for m in modes:
                start = time.perf_counter()
                call(sides[s], m)
                times[(s, m)].append(time.perf_counter() - start)
    for s in sides:
        none, pixel = times[(s, "none")], times[(s, "pixel")]
        print(f"{s}: none {1e3 * statistics.median(none):.2f} ms (best {1e3 * min(none):.2f}), "
              f"pixel {1e3 * statistics.median(pixel):.2f} ms (best {1e3 * min(pixel):.2f})")
        _show(f"  {s}: pixel over none", [p / n - 1 for p, n in zip(pixel, none)])
    for m in _MODES:
        _show(f"new over old, {m}", [a / b - 1 for a, b in zip(times[("new", m)], times[("old", m)])])


if __name__ == "__main__":
    main()
