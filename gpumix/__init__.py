"""gpumix: mixup-augmented ImageNet and CIFAR batches, mixed and normalized in one fused pass.

Public API:
- ``Mixup``: validated mixup/CutMix config; ``Mixup.sample`` draws ``MixParams``.
- ``MixParams``: lam, partner index and CutMix boxes of one batch.
- ``RandomErasing``: validated random-erasing config (timm's); its ``sample`` draws ``ErasingParams``.
- ``mix_normalize``: the fused operator (CUDA kernel or CPU twin); ``normalize``: its no-mixing identity.
- ``MixupIterator``: a DALI pipeline in, mixed and normalized torch batches out
  (with ``MixedBatch`` and ``LastBatch``); imports nvidia.dali on first use.

Importing gpumix loads torch and numpy only: numba and the kernels are
imported on first use, and nothing touches a GPU.
"""
from typing import TYPE_CHECKING, Any

from gpumix.erasing import ErasingParams, RandomErasing
from gpumix.mixup import MixMode, Mixup
from gpumix.ops import mix_normalize, normalize
from gpumix.params import MixParams

if TYPE_CHECKING:  # for type checkers only: at run time they are loaded lazily (below)
    from gpumix.iterator import LastBatch, MixedBatch, MixupIterator

__version__ = "0.1.0"
__all__ = ["Mixup", "MixMode", "MixParams", "RandomErasing", "ErasingParams", "mix_normalize", "normalize",
           "MixupIterator", "MixedBatch", "LastBatch", "__version__"]

_LAZY = ("MixupIterator", "MixedBatch", "LastBatch")


def __getattr__(name: str) -> Any:
    # The iterator imports nvidia.dali: load it only when it is asked for.
    if name in _LAZY:
        from gpumix import iterator
        return getattr(iterator, name)
    raise AttributeError(f"module 'gpumix' has no attribute {name!r}")
