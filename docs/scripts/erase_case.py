"""The batch the erasing scripts time: random images, mixup, and DeiT's random erasing, drawn once.

One source for ``erase_pairs.py``, ``erase_profile.py``, ``twin_compile_time.py``
and ``erase_host_overhead.py`` (imported from this directory, which Python
puts first on the path of a script run from it). Importing it imports
gpumix, so a script that sets ``NUMBA_CACHE_DIR`` imports it afterwards.
"""
from dataclasses import dataclass
from typing import Any

import torch

import gpumix
from gpumix.datasets import STATS
from gpumix.kernels import arith

_STATS = STATS["imagenet"]
_INV_STD = [1 / s for s in _STATS.std]


@dataclass
class Case:
    """B random (H, W, 3) uint8 images, their labels and mix parameters, and erasing per mode.

    ``erasing``: mode -> ``gpumix.ErasingParams`` ('none' -> None);
    ``images``/``targets``: preallocated float32 outputs, NCHW.
    """

    batch: torch.Tensor
    labels: torch.Tensor
    params: gpumix.MixParams
    erasing: dict[str, gpumix.ErasingParams | None]
    images: torch.Tensor
    targets: torch.Tensor
    boxes: torch.Tensor  # int32 (B, 4), all empty: no CutMix

    def launch(self, twin: Any, mode: str) -> None:
        """One call of a CPU twin module's ``launch`` on the case, with mode's erasing, fp32 NCHW, ImageNet stats."""
        e = self.erasing[mode]
        twin.launch(self.batch, self.labels, self.params.lam, self.params.index, self.boxes, _STATS.mean, _INV_STD,
                    0.0, arith.ENC_F32, self.images, self.targets,
                    erasing=None if e is None else (e.boxes, e.colors, e.keys, e.noise))


def case(n: int, size: int, num_classes: int = 1000, prob: float = 0.25) -> Case:
    """The case: seed 0 throughout, mixup alpha 0.2, erasing 'pixel' and 'const' at ``prob``."""
    torch.manual_seed(0)
    batch = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8)
    labels = torch.randint(0, num_classes, (n,))
    params = gpumix.Mixup(num_classes=num_classes, alpha=0.2, seed=0).sample(n, (size, size), epoch=0, step=0)
    erasing: dict[str, gpumix.ErasingParams | None] = {"none": None}
    for mode in ("pixel", "const"):
        erasing[mode] = gpumix.RandomErasing(prob=prob, mode=mode, seed=0).sample(n, (size, size), 3, epoch=0,
                                                                                  step=0)
    return Case(batch, labels, params, erasing, torch.empty(n, 3, size, size), torch.empty(n, num_classes),
                torch.zeros(n, 4, dtype=torch.int32))
