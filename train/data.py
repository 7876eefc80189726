"""The trainer's data: one rank's DALI train and val pipelines, wrapped in ``MixupIterator``.

ImageNet ``--data DIR`` holds ``train`` and ``val``, each a class-folder root
(ILSVRC layout), a DALI file list (``train.txt``/``val.txt``, its relative
paths relative to ``DIR``, the list's folder, as ``gpumix-scan`` writes them) or a folder of
WebDataset ``.tar`` shards with their ``.idx`` indexes. CIFAR ``--data DIR`` is
the extracted official folder (or its parent), as ``cifar_train`` accepts.
"""
import glob
import os

import torch

from gpumix.datasets import NUM_CLASSES, STATS, data_source
from gpumix.erasing import RandomErasing
from gpumix.iterator import MixupIterator
from gpumix.mixup import Mixup
from gpumix.pipelines import AutoAugment, cifar_train, cifar_val, imagenet_train, imagenet_val

__all__ = ["imagenet_split", "num_classes_of", "input_dtype", "auto_augment_of", "build_loaders"]

def imagenet_split(data, split):
    """What ``imagenet_train``/``imagenet_val`` take for ``DIR/split``: a file list, shard paths or a folder.

    The file list ``DIR/split.txt`` wins over a ``DIR/split/`` folder beside it:
    it is the clean list ``gpumix-scan DIR/split --output DIR/split.txt`` writes.
    """
    if data is None:
        raise ValueError("data: --data is required (the dataset root)")
    folder = os.path.join(os.fspath(data), split)
    listing = folder + ".txt"
    if os.path.isfile(listing):
        return listing
    if os.path.isdir(folder):
        tars = sorted(glob.glob(os.path.join(folder, "*.tar")))
        return tars if tars else folder
    raise FileNotFoundError(f"data: {data} has neither a {split}/ folder nor a {split}.txt file list "
                            "(expected DIR/train and DIR/val)")


def num_classes_of(dataset, train_source):
    """Classes of the dataset: CIFAR's, the class folders of an ImageNet root, or a file list's largest label + 1.

    WebDataset shards carry no class count; ImageNet's 1000 is assumed for them.
    """
    if dataset != "imagenet":
        return NUM_CLASSES[dataset]
    found = data_source(train_source).num_classes
    return NUM_CLASSES["imagenet"] if found is None else found


def input_dtype(device, amp):
    """The dtype the iterator writes: what the first layer consumes under autocast, fp32 without it."""
    if device.type != "cuda" or amp == "off":
        return torch.float32
    return torch.bfloat16 if amp == "bf16" else torch.float16


def auto_augment_of(cfg):
    """The train pipelines' ``AutoAugment`` for ``cfg.auto_augment`` and its RandAugment knobs, or None."""
    if cfg.auto_augment is None:
        return None
    return AutoAugment(cfg.auto_augment, num_ops=cfg.randaug_num_ops, magnitude=cfg.randaug_magnitude)


def build_loaders(cfg, *, device, rank, world_size, num_classes, train_state=None):
    """This rank's (train, val) ``MixupIterator`` pair.

    The train iterator mixes with ``Mixup(num_classes, cfg.mixup_alpha,
    cfg.cutmix_alpha, label_smoothing, seed)`` (None, i.e. ERM, when both alphas
    are 0) and yields what ``cfg.loss`` needs, in full batches only (DROP); the val iterator only
    normalizes, with the PARTIAL policy, so that every val sample is counted
    once. ``train_state`` resumes the train iterator (its pipeline is restored
    from ``train_state["dali"]``). Shards follow the global rank.
    """
    per_rank = cfg.global_batch_size // world_size
    pipe_device = "gpu" if device.type == "cuda" else "cpu"
    common = dict(batch_size=per_rank, device=pipe_device, device_id=device.index if device.type == "cuda" else 0,
                  shard_id=rank, num_shards=world_size, seed=cfg.seed, num_threads=cfg.num_threads)
    checkpoint = None if train_state is None else train_state["dali"]
    augment = auto_augment_of(cfg)
    if cfg.dataset == "imagenet":
        train_pipe = imagenet_train(imagenet_split(cfg.data, "train"), crop=cfg.crop, checkpoint=checkpoint,
                                    decoder=cfg.decoder, reader_workers=cfg.reader_workers, auto_augment=augment,
                                    **common)
        val_pipe = imagenet_val(imagenet_split(cfg.data, "val"), crop=cfg.crop, resize=cfg.val_resize,
                                decoder=cfg.decoder, reader_workers=cfg.reader_workers, **common)
    else:
        train_pipe = cifar_train(cfg.data, dataset=cfg.dataset, checkpoint=checkpoint, auto_augment=augment,
                                 **common)
        val_pipe = cifar_val(cfg.data, dataset=cfg.dataset, **common)
    mixup = None
    if cfg.mixup_alpha > 0 or cfg.cutmix_alpha > 0:
        mixup = Mixup(num_classes=num_classes, alpha=cfg.mixup_alpha, cutmix_alpha=cfg.cutmix_alpha,
                      label_smoothing=cfg.label_smoothing, seed=cfg.seed, off_epoch=cfg.mixup_off_epoch,
                      mode=cfg.mixup_mode, prob=cfg.mixup_prob, switch_prob=cfg.mixup_switch_prob)
    normalization = dict(mean=STATS[cfg.dataset].mean, std=STATS[cfg.dataset].std, dtype=input_dtype(device, cfg.amp),
                channels_last=cfg.channels_last)
    # DROP: every step has the full global batch (Goyal et al. keep it constant), and every rank
    # runs the same number of steps; each epoch's shuffle leaves out a different < 1 batch per shard.
    erasing = None
    if cfg.reprob > 0:  # timm's --reprob: erased in the fused pass, after normalization, before mixing
        erasing = RandomErasing(prob=cfg.reprob, mode=cfg.remode, max_count=cfg.recount, seed=cfg.seed)
    train = MixupIterator(train_pipe, mixup, rank=rank, state=train_state, last_batch_policy="drop", erasing=erasing,
                          return_clean=mixup is not None and cfg.loss == "mixupe",
                          return_params=mixup is not None and cfg.loss == "pair", num_classes=num_classes,
                          **normalization)
    val = MixupIterator(val_pipe, None, last_batch_policy="partial", rank=rank, num_classes=num_classes,
                        **normalization)
    return train, val
