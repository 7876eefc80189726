"""gpumix: mixup-augmented ImageNet and CIFAR batches, mixed and normalized in one fused pass.

Public API:
- ``Mixup``: validated mixup/CutMix config; ``Mixup.sample`` draws ``MixParams``.
- ``MixParams``: lam, partner index and CutMix boxes of one batch.
- ``mix_normalize``: the fused operator (CUDA kernel or CPU twin).

Importing gpumix loads torch and numpy only: numba and the kernels are
imported on first use, and nothing touches a GPU.
"""
from gpumix.mixup import MixMode, Mixup
from gpumix.ops import mix_normalize
from gpumix.params import MixParams

__version__ = "0.1.0"
__all__ = ["Mixup", "MixMode", "MixParams", "mix_normalize", "__version__"]
