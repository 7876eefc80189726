"""How long the CPU twin takes to compile: the first call of copies of it, each in a fresh numba cache.

    NUMBA_CACHE_DIR=$(mktemp -d) python docs/scripts/twin_compile_time.py NAME=DIR

``NAME=DIR`` imports module NAME from directory DIR: a copy of
``kernels/mix_normalize_cpu.py`` with ``cache=False`` (as ``erase_variants.py``
writes them; ``git show REV:kernels/mix_normalize_cpu.py`` for an older
twin). Each copy's first call, fp32 NCHW with 'pixel' erasing on 4 8x8
images, compiles its float32 signature; the time printed is that call's.
One copy per process: run it once per copy, each with its own NUMBA_CACHE_DIR.
"""
import importlib
import sys
import time

import torch

import gpumix
from gpumix.datasets import STATS
from gpumix.kernels import arith


def main() -> None:
    if len(sys.argv) != 2 or "=" not in sys.argv[1]:
        raise SystemExit(__doc__)
    name, path = sys.argv[1].split("=")
    sys.path.insert(0, path)
    twin = importlib.import_module(name)
    n, size = 4, 8
    batch = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,))
    params = gpumix.Mixup(num_classes=10, alpha=0.2, seed=0).sample(n, (size, size), epoch=0, step=0)
    e = gpumix.RandomErasing(prob=1, mode="pixel", seed=0).sample(n, (size, size), 3, epoch=0, step=0)
    stats = STATS["imagenet"]
    images, targets = torch.empty(n, 3, size, size), torch.empty(n, 10)
    start = time.perf_counter()
    twin.launch(batch, labels, params.lam, params.index, torch.zeros(n, 4, dtype=torch.int32), stats.mean,
                [1 / s for s in stats.std], 0.0, arith.ENC_F32, images, targets,
                erasing=(e.boxes, e.colors, e.keys, e.noise))
    print(f"{name}: first call (compiling the float32 signature) {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
