"""The competitors' loaders under test: plain DALI (``DALIGenericIterator``), torchvision and timm.

Plain DALI reads gpumix's own train pipeline and finishes the batch with
``gpumix.normalize`` or the unfused torch chain; torchvision's ``DataLoader``
and timm's ``create_loader`` read the same files with the same crop, flip,
normalization and mixup alpha.
"""
from __future__ import annotations

from typing import Any

import torch

from gpumix.bench.data import DataSpec
from gpumix.bench.gpumix_loaders import train_pipeline
from gpumix.bench.variants import ALPHA, PREFETCH_FACTOR, LoaderSettings, Step, epoch_loop, next_auto_reset
from gpumix.datasets import CIFAR_SIZE
from gpumix.kernels.reference import unfused_chain

__all__ = ["dali_iterator", "timm_loader", "torch_transforms", "torchvision_loader"]


def dali_iterator(spec: DataSpec, s: LoaderSettings, unfused: bool) -> tuple[Step, Any]:
    """(step, owner): DALI's ``DALIGenericIterator``, then the unfused torch mixup chain or ``gpumix.normalize``."""
    from nvidia.dali.plugin.base_iterator import LastBatchPolicy
    from nvidia.dali.plugin.pytorch import DALIGenericIterator

    import gpumix

    it = DALIGenericIterator(train_pipeline(spec, s), ["images", "labels"], reader_name="Reader", auto_reset=True,
                             last_batch_policy=LastBatchPolicy.PARTIAL)
    mix = gpumix.Mixup(num_classes=spec.num_classes, alpha=ALPHA, seed=s.seed)
    counter = [0]

    def step() -> int:
        out = next_auto_reset(it)[0]
        images, labels = out["images"], out["labels"].reshape(-1).long()
        if unfused:
            params = mix.sample(images.shape[0], tuple(images.shape[1:3]), epoch=0, step=counter[0])
            counter[0] += 1
            unfused_chain(images, labels, params, mean=spec.mean, std=spec.std, num_classes=spec.num_classes)
        else:
            gpumix.normalize(images, mean=spec.mean, std=spec.std)
            labels.to(images.device, non_blocking=True)
        return int(images.shape[0])
    return step, it


def torch_transforms(spec: DataSpec) -> Any:
    """torchvision's v2 train transforms matching the DALI pipeline's augmentation, normalize included."""
    from torchvision.transforms import v2

    from gpumix.pipelines.imagenet import AREA, ASPECT

    crop = [v2.RandomResizedCrop(spec.image_size, scale=AREA, ratio=ASPECT, antialias=True)]
    if spec.kind != "imagenet":
        crop = [v2.RandomCrop(CIFAR_SIZE, padding=4)]
    return v2.Compose(crop + [v2.RandomHorizontalFlip(), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                              v2.Normalize([m / 255 for m in spec.mean], [d / 255 for d in spec.std])])


def torchvision_loader(spec: DataSpec, s: LoaderSettings, dataset: Any) -> tuple[Step, Any]:
    """(step, owner): torchvision's ``DataLoader`` over ``dataset`` (workers = threads), then ``v2.MixUp``."""
    from torchvision.transforms import v2

    dataset.transform = torch_transforms(spec)
    cuda = s.device == "gpu"
    loader = torch.utils.data.DataLoader(dataset, batch_size=s.batch_size, shuffle=True, num_workers=s.threads,
                                         drop_last=True, persistent_workers=True, pin_memory=cuda,
                                         prefetch_factor=PREFETCH_FACTOR)
    mix = v2.MixUp(alpha=ALPHA, num_classes=spec.num_classes)
    next_batch, state = epoch_loop(loader)
    device = s.torch_device

    def step() -> int:
        images, labels = next_batch()
        if cuda:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        images, _ = mix(images, labels)
        return int(images.shape[0])
    return step, state


def timm_loader(spec: DataSpec, s: LoaderSettings, dataset: Any) -> tuple[Step, Any]:
    """(step, owner): what timm's train.py runs, ``create_loader`` with its mixup (collate on a GPU)."""
    from timm.data import FastCollateMixup, Mixup, create_loader

    from gpumix.pipelines.imagenet import AREA, ASPECT

    cuda = s.device == "gpu"
    mix_args = dict(mixup_alpha=ALPHA, cutmix_alpha=0.0, label_smoothing=0.0, num_classes=spec.num_classes)
    # On a GPU its prefetcher (normalize on the GPU) with mixup in the workers' collate; without
    # one, the plain loader and Mixup applied to each batch.
    loader = create_loader(dataset, input_size=(3, spec.image_size, spec.image_size), batch_size=s.batch_size,
                           is_training=True, use_prefetcher=cuda, scale=AREA, ratio=ASPECT, hflip=0.5,
                           color_jitter=None,  # type: ignore[arg-type]  # None: no jitter (timm's annotation says float)
                           interpolation="bilinear", mean=tuple(m / 255 for m in spec.mean),
                           std=tuple(d / 255 for d in spec.std), num_workers=s.threads, pin_memory=cuda,
                           device=s.torch_device, collate_fn=FastCollateMixup(**mix_args) if cuda else None)
    mix = None if cuda else Mixup(**mix_args)
    next_batch, state = epoch_loop(loader)

    def step() -> int:
        images, targets = next_batch()
        if mix is not None:
            images, targets = mix(images, targets)
        return int(images.shape[0])
    return step, state
