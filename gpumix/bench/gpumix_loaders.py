"""gpumix's own loaders under test: its DALI train pipeline into ``MixupIterator``, with and without mixup."""
from __future__ import annotations

from typing import Any

from gpumix.bench.data import DataSpec
from gpumix.bench.variants import ALPHA, PREFETCH_DEPTH, LoaderSettings, Step, next_auto_reset

__all__ = ["mixup_iterator", "train_pipeline"]


def train_pipeline(spec: DataSpec, s: LoaderSettings, auto_augment: str | None = None, antialias: bool = True) -> Any:
    """gpumix's ImageNet or CIFAR train pipeline over ``spec`` (uint8 HWC out), as every DALI variant reads."""
    from gpumix.pipelines import cifar_train, imagenet_train

    common = dict(batch_size=s.batch_size, device=s.device, num_threads=s.threads, seed=s.seed,
                  prefetch_queue_depth=PREFETCH_DEPTH, auto_augment=auto_augment)
    if spec.kind == "imagenet":
        return imagenet_train(list(spec.data) if isinstance(spec.data, tuple) else spec.data,
                              crop=spec.image_size, antialias=antialias, **common)
    return cifar_train(spec.data, dataset=spec.kind, **common)


def mixup_iterator(spec: DataSpec, s: LoaderSettings, with_mixup: bool, auto_augment: str | None = None,
                   antialias: bool = True) -> tuple[Step, Any]:
    """(step, owner): ``gpumix.MixupIterator`` over the train pipeline, with a ``Mixup`` or normalizing only."""
    import gpumix

    mix = gpumix.Mixup(num_classes=spec.num_classes, alpha=ALPHA, seed=s.seed) if with_mixup else None
    it = gpumix.MixupIterator(train_pipeline(spec, s, auto_augment, antialias), mix, mean=spec.mean, std=spec.std)

    def step() -> int:
        batch = next_auto_reset(it)  # (images, targets): neither return_clean nor return_params
        return int(batch[0].shape[0])
    return step, it
