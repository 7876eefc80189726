"""Builds the parts of one rank's training run from a ``TrainConfig``: data, loaders, model, optimizer.

``build_training(cfg, dist, resume_state)`` seeds torch, Python and NumPy,
finds the class count in the data, builds this rank's train and val
``MixupIterator``, the learning-rate schedule, the model (channels_last, DDP,
``torch.compile`` as asked), the optimizer, the fp16 GradScaler and the
weights' moving average, and restores them all from a checkpoint state when
resuming. ``gpumix.train.loop`` only wires the parts together.
"""
from __future__ import annotations

import dataclasses
import random
from typing import TYPE_CHECKING

import numpy as np
import torch

from gpumix.iterator import MixupIterator
from gpumix.train.checkpoint import restore_training
from gpumix.train.data import build_loaders, imagenet_split, num_classes_of
from gpumix.train.models import build_model
from gpumix.train.optim import build_optimizer
from gpumix.train.schedule import LRSchedule

if TYPE_CHECKING:
    from gpumix.train.config import TrainConfig
    from gpumix.train.dist import Dist

__all__ = ["TrainingParts", "seed_everything", "find_num_classes", "build_training"]


@dataclasses.dataclass
class TrainingParts:
    """What ``build_training`` makes: everything a rank trains with, restored when resuming.

    ``model`` is what the steps call (DDP- and compile-wrapped as asked);
    ``ema`` the weights' moving average or None; ``step`` the optimizer steps
    already taken (0 for a fresh run); ``last_eval`` the checkpoint's last
    evaluation or None.
    """

    num_classes: int
    train_loader: MixupIterator
    val_loader: MixupIterator
    schedule: LRSchedule
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: torch.optim.swa_utils.AveragedModel | None
    step: int
    last_eval: dict | None


def seed_everything(cfg: TrainConfig, device: torch.device) -> None:
    """Seed torch, ``random`` and NumPy with ``cfg.seed`` (the same initial weights on every rank), and set
    torch's deterministic algorithms (``cfg.deterministic``) or cuDNN's autotuner (on the GPU)."""
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def find_num_classes(cfg: TrainConfig) -> int:
    """``cfg.num_classes``, or the data's class count when it is None.

    ValueError if ``cfg.data`` is missing, or ``cfg.num_classes`` is below the
    classes the train split holds (shards carry no count and are not checked).
    """
    if cfg.data is None:
        raise ValueError("data: --data is required (the dataset root)")
    train_source = imagenet_split(cfg.data, "train") if cfg.dataset == "imagenet" else cfg.data
    if cfg.num_classes is None:
        return num_classes_of(cfg.dataset, train_source)
    if not isinstance(train_source, list):  # shards carry no class count
        found = num_classes_of(cfg.dataset, train_source)
        if cfg.num_classes < found:
            raise ValueError(f"num_classes: --num-classes is {cfg.num_classes}, but the train split has {found} "
                             f"classes (labels 0 to {found - 1}); leave the flag out to use the data's count")
    return cfg.num_classes


def build_training(cfg: TrainConfig, dist: Dist, resume_state: dict | None = None) -> TrainingParts:
    """This rank's ``TrainingParts`` for ``cfg``, restored from ``resume_state`` (a checkpoint dict) when given.

    ValueError if the train split has fewer samples than one global batch.
    """
    device = dist.device
    seed_everything(cfg, device)
    num_classes = find_num_classes(cfg)
    train_loader, val_loader = build_loaders(
        cfg, device=device, rank=dist.rank, world_size=dist.world_size, num_classes=num_classes,
        train_state=None if resume_state is None else resume_state["iterators"][dist.rank])
    if len(train_loader) == 0:
        raise ValueError(f"the train split has too few samples for one global batch of {cfg.global_batch_size} "
                         f"({cfg.global_batch_size // dist.world_size} per rank on {dist.world_size} ranks)")
    schedule = LRSchedule(base_lr=cfg.base_lr, peak_lr=cfg.peak_lr, warmup_epochs=cfg.warmup_epochs,
                          milestones=cfg.milestones, gamma=cfg.gamma, steps_per_epoch=len(train_loader),
                          **cfg.schedule_decay())

    model = build_model(cfg.arch, num_classes).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg, schedule.lr_at(0))
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and cfg.amp == "fp16")
    # the weights' moving average (torch's AveragedModel: its first update copies the weights, then
    # ema = decay * ema + (1 - decay) * weights after every step, BatchNorm buffers included)
    ema = None if cfg.model_ema_decay is None else torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.model_ema_decay), use_buffers=True)
    step, last_eval = 0, None
    if resume_state is not None:
        step = restore_training(resume_state, rank=dist.rank, model=model, optimizer=optimizer, scaler=scaler,
                                ema=ema)
        last_eval = resume_state.get("last_eval")
    if dist.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        model = torch.compile(model)
    return TrainingParts(num_classes=num_classes, train_loader=train_loader, val_loader=val_loader,
                         schedule=schedule, model=model, optimizer=optimizer, scaler=scaler, ema=ema, step=step,
                         last_eval=last_eval)
