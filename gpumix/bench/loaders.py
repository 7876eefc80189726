"""The loaders ``gpumix-bench`` compares over one ``DataSpec``, gpumix's first, each as a ``Variant``.

The DALI variants share one pipeline definition (gpumix's ImageNet or CIFAR
train pipeline) and differ only in what turns its uint8 output into a mixed,
normalized float32 NCHW batch: gpumix's ``MixupIterator`` with and without a
``Mixup`` (``gpumix_loaders``), or DALI's own ``DALIGenericIterator`` followed
by ``gpumix.normalize`` or by the unfused torch chain (``baselines``). The
torch variants (``baselines``) read the same files or CIFAR arrays
(``torch_data``) with torchvision's ``DataLoader`` and timm's ``create_loader``.
"""
from __future__ import annotations

import functools
from typing import Any

import torch

from gpumix.bench import baselines
from gpumix.bench.data import EPOCH, DataSpec
from gpumix.bench.gpumix_loaders import mixup_iterator
from gpumix.bench.torch_data import Repeated, torch_dataset
from gpumix.bench.variants import ALPHA, PREFETCH_DEPTH, PREFETCH_FACTOR, LoaderSettings, Variant
from gpumix.datasets import SourceKind
from gpumix.kernels.reference import unfused_chain

__all__ = ["build_variants", "prepare_process"]


def prepare_process(spec: DataSpec, settings: LoaderSettings) -> None:
    """Pay the costs every gpumix-side loader shares once, before any of them is measured.

    Sets numba's threads to ``settings.threads`` (which starts its thread
    pool: call this after the DataLoader workers have forked), compiles the
    CPU twin (numba) or loads the CUDA kernel for this output type, and runs
    the unfused chain once, on a 2-image batch; so no loader's warm-up or
    memory figure carries the compilation.
    """
    import numba

    import gpumix

    numba.set_num_threads(min(settings.threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    device = settings.torch_device
    batch = torch.zeros((2, spec.image_size, spec.image_size, 3), dtype=torch.uint8, device=device)
    labels = torch.zeros(2, dtype=torch.int64)
    params = gpumix.Mixup(num_classes=spec.num_classes, alpha=ALPHA, seed=settings.seed).sample(
        2, (spec.image_size, spec.image_size), epoch=0, step=0)
    common: dict[str, Any] = {"mean": spec.mean, "std": spec.std}
    gpumix.mix_normalize(batch, labels, params, num_classes=spec.num_classes, **common)
    gpumix.normalize(batch, **common)
    unfused_chain(batch, labels, params, num_classes=spec.num_classes, **common)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_variants(spec: DataSpec, settings: LoaderSettings,
                   auto_augment: tuple[str, ...] = ()) -> tuple[list[Variant], list[dict[str, str]]]:
    """(variants, skipped): every loader of the benchmark over ``spec``, gpumix first, not started yet.

    ``auto_augment``: policy names ("randaugment", ...); each adds the gpumix
    variant with that policy in its DALI pipeline (key ``gpumix_<policy>``),
    default knobs, right after the plain gpumix variant. ``skipped`` lists
    ``{key, name, reason}`` for loaders that cannot run here (timm not
    installed, or an odd batch for timm's Mixup).
    """
    cores, gpu = settings.threads, settings.device == "gpu"
    workers = f"{cores} worker{'s' if cores != 1 else ''}"
    pipe = "DALI " + ("ImageNet" if spec.kind == "imagenet" else "CIFAR") + " train pipeline"
    if spec.source is None:
        dataset_name = "Dataset over load_cifar arrays"
    else:
        dataset_name = "ImageFolder" if spec.source.kind is SourceKind.FOLDER else "Dataset over the same files"
    worker_ready = cores * PREFETCH_FACTOR

    def repeated() -> Repeated:
        return Repeated(torch_dataset(spec), EPOCH[spec.kind])

    variants = [
        Variant("gpumix", f"gpumix: {pipe} + MixupIterator + Mixup", PREFETCH_DEPTH,
                lambda: mixup_iterator(spec, settings, True)),
        *[Variant(f"gpumix_{policy}", f"gpumix + {policy} (DALI auto_aug, default knobs) in the pipeline",
                  PREFETCH_DEPTH, functools.partial(mixup_iterator, spec, settings, True, policy))
          for policy in auto_augment],
        Variant("normalize_only", "same pipeline + MixupIterator, normalize only (no mixup)", PREFETCH_DEPTH,
                lambda: mixup_iterator(spec, settings, False)),
        Variant("dali_normalize", "same pipeline + DALIGenericIterator + gpumix.normalize (no mixup)",
                PREFETCH_DEPTH, lambda: baselines.dali_iterator(spec, settings, False)),
        Variant("dali_unfused", "same pipeline + DALIGenericIterator + unfused torch mixup chain", PREFETCH_DEPTH,
                lambda: baselines.dali_iterator(spec, settings, True)),
        Variant("torchvision", f"torchvision {dataset_name} + DataLoader ({workers}) + normalize + v2.MixUp",
                worker_ready, lambda: baselines.torchvision_loader(spec, settings, repeated()), torch_side=True),
    ]
    if spec.kind == "imagenet":  # what the training resize's antialiasing costs (docs/benchmarks.md)
        variants.insert(1 + len(auto_augment),
                        Variant("gpumix_aliased", "same pipeline with antialias=False (aliased resize) + Mixup",
                                PREFETCH_DEPTH, lambda: mixup_iterator(spec, settings, True, antialias=False)))
    timm_name = (f"timm create_loader ({workers}, prefetcher) + FastCollateMixup" if gpu
                 else f"timm create_loader ({workers}) + timm Mixup")
    skipped = []
    try:
        import timm  # noqa: F401
    except ImportError:
        skipped.append({"key": "timm", "name": timm_name,
                        "reason": "timm is not installed (pip install -e '.[bench]')"})
    else:
        if settings.batch_size % 2:
            skipped.append({"key": "timm", "name": timm_name,
                            "reason": f"timm's Mixup needs an even batch size, got {settings.batch_size}"})
        else:
            variants.append(Variant("timm", timm_name, worker_ready + gpu,
                                    lambda: baselines.timm_loader(spec, settings, repeated()), torch_side=True))
    return variants, skipped
