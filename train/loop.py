"""The training loop: DDP over already-mixed batches, evaluation, checkpoints, metrics and exact resume.

``train(cfg)`` runs one rank of a run (torchrun starts one per GPU or CPU
worker). Every rank builds its own shard's pipelines; rank 0 writes the
checkpoint, the metrics, the run record and the plot into ``cfg.output``.
"""
import json
import math
import os
import random
import time

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from tqdm import tqdm

from gpumix.runinfo import run_record
from gpumix.train import dist
from gpumix.atomic import remove_partial_writes, write_atomically
from gpumix.train.checkpoint import (CHECKPOINT_NAME, latest_checkpoint, load_checkpoint,
                                     rng_state, save_checkpoint, set_rng_state)
from gpumix.train.data import build_loaders, imagenet_split, num_classes_of
from gpumix.train.losses import bce_loss, mixupe_loss, pair_ce, soft_target_ce
from gpumix.train.metrics import MetricsLog, plot_metrics
from gpumix.train.models import build_model
from gpumix.train.optim import build_optimizer
from gpumix.train.schedule import LRSchedule

__all__ = ["train", "NonFiniteLoss", "CHECKPOINT_FORMAT", "RUN_IDENTITY_DEFAULTS"]

CHECKPOINT_FORMAT = "gpumix.train/1"
# Settings that must match for a checkpoint to continue the same run.
_RUN_IDENTITY = ("dataset", "arch", "global_batch_size", "seed", "mixup_alpha", "cutmix_alpha", "label_smoothing",
                 "loss", "crop", "base_lr", "peak_lr", "warmup_epochs", "milestones", "gamma", "momentum",
                 "weight_decay", "nesterov", "amp", "channels_last", "epochs")
# Added later (issue 15): a checkpoint written before them has none and ran with these defaults.
RUN_IDENTITY_DEFAULTS = {"mixup_off_epoch": None, "mixup_mode": "batch", "mixup_prob": 1.0, "mixup_switch_prob": 0.5,
                         "bce_target_thresh": None, "bce_sum": False, "auto_augment": None,
                         "randaug_num_ops": 2, "randaug_magnitude": 9, "optimizer": "sgd", "lr_decay": "step",
                         "min_lr": 0.0, "clip_grad": None, "model_ema_decay": None,
                         "reprob": 0.0, "remode": "const", "recount": 1}


class NonFiniteLoss(FloatingPointError):
    """The loss or the weights became NaN or Inf; the run stopped without checkpointing the bad weights."""


def _unwrap(model):
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return getattr(model, "module", model)  # DDP


def _autocast(device, amp):
    if device.type != "cuda" or amp == "off":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


class _Trainer:
    def __init__(self, cfg, where):
        self.cfg, self.d = cfg, where
        self.device = where.device
        self.output = os.path.abspath(cfg.output)
        self.checkpoint_path = os.path.join(self.output, CHECKPOINT_NAME)
        resume_state = self._resume_state()

        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        if cfg.data is None:
            raise ValueError("data: --data is required (the dataset root)")
        train_source = imagenet_split(cfg.data, "train") if cfg.dataset == "imagenet" else cfg.data
        self.num_classes = cfg.num_classes or num_classes_of(cfg.dataset, train_source)
        if cfg.num_classes is not None and not isinstance(train_source, list):  # shards carry no class count
            found = num_classes_of(cfg.dataset, train_source)
            if cfg.num_classes < found:
                raise ValueError(f"num_classes: --num-classes is {cfg.num_classes}, but the train split has {found} "
                                 f"classes (labels 0 to {found - 1}); leave the flag out to use the data's count")
        self.train_loader, self.val_loader = build_loaders(
            cfg, device=self.device, rank=where.rank, world_size=where.world_size, num_classes=self.num_classes,
            train_state=None if resume_state is None else resume_state["iterators"][where.rank])
        if len(self.train_loader) == 0:
            raise ValueError(f"the train split has too few samples for one global batch of {cfg.global_batch_size} "
                             f"({cfg.global_batch_size // where.world_size} per rank on {where.world_size} ranks)")
        self.schedule = LRSchedule(base_lr=cfg.base_lr, peak_lr=cfg.peak_lr, warmup_epochs=cfg.warmup_epochs,
                                   milestones=cfg.milestones, gamma=cfg.gamma,
                                   steps_per_epoch=len(self.train_loader), **cfg.schedule_decay())

        model = build_model(cfg.arch, self.num_classes).to(self.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(model, cfg, self.schedule.lr_at(0))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda" and cfg.amp == "fp16")
        self.step = 0
        # the weights' moving average (torch's AveragedModel: its first update copies the weights, then
        # ema = decay * ema + (1 - decay) * weights after every step, BatchNorm buffers included)
        self.ema = None if cfg.model_ema_decay is None else torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.model_ema_decay), use_buffers=True)
        if resume_state is not None:
            model.load_state_dict(resume_state["model"])
            if self.ema is not None:
                self.ema.load_state_dict(resume_state["ema"])
            self.optimizer.load_state_dict(resume_state["optimizer"])
            self.scaler.load_state_dict(resume_state["scaler"])
            self.step = resume_state["step"]
            set_rng_state(resume_state["rng"][where.rank])
        if where.distributed:
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.model = torch.compile(model) if cfg.compile else model
        self.metrics = MetricsLog(self.output, keep_through_step=self.step) if where.is_main else None
        self.tensorboard = self._tensorboard() if where.is_main and cfg.tensorboard else None
        self.last_eval = None if resume_state is None else resume_state.get("last_eval")

    # --- resume --------------------------------------------------------------------------------
    def _resume_state(self):
        cfg, where = self.cfg, self.d
        found = latest_checkpoint(self.output)
        if not cfg.resume:
            if found is not None:
                raise FileExistsError(f"output: {self.output} already holds a checkpoint ({found}); pass --resume "
                                      "to continue that run, or choose another --output")
            if where.is_main:
                os.makedirs(self.output, exist_ok=True)
                remove_partial_writes(os.path.join(self.output, CHECKPOINT_NAME))  # a run killed mid-write left them
            return None
        if found is None:
            raise FileNotFoundError(f"--resume: no checkpoint in {self.output} (expected {CHECKPOINT_NAME})")
        state = load_checkpoint(found)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"--resume: {found} is not a gpumix.train checkpoint (format {state.get('format')!r})")
        if state["world_size"] != where.world_size:
            raise ValueError(f"--resume: {found} was written by {state['world_size']} ranks, this run has "
                             f"{where.world_size}; resume with the same number of ranks")
        current = cfg.to_dict()
        for name in _RUN_IDENTITY:
            if state["config"][name] != current[name]:
                raise ValueError(f"--resume: {name} is {current[name]!r} but the checkpoint's run used "
                                 f"{state['config'][name]!r}")
        for name, default in RUN_IDENTITY_DEFAULTS.items():
            if state["config"].get(name, default) != current[name]:
                raise ValueError(f"--resume: {name} is {current[name]!r} but the checkpoint's run used "
                                 f"{state['config'].get(name, default)!r}")
        if where.is_main:
            remove_partial_writes(found)  # the killed run's half-written checkpoint, if it died while saving
        return state

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError("--tensorboard needs the tensorboard package: pip install 'gpumix[tensorboard]'") from e
        # purge_step: events logged after the resumed checkpoint by the run that died are hidden, not shown twice
        return SummaryWriter(os.path.join(self.output, "tensorboard"), purge_step=self.step or None)

    # --- one step ------------------------------------------------------------------------------
    def _loss(self, batch):
        cfg = self.cfg
        with _autocast(self.device, cfg.amp):
            if self.train_loader.mixup is None:  # ERM: integer labels
                images, labels = batch
                if cfg.loss == "bce":
                    return bce_loss(self.model(images), labels, label_smoothing=cfg.label_smoothing,
                                    target_threshold=cfg.bce_target_thresh, sum_classes=cfg.bce_sum)
                return F.cross_entropy(self.model(images).float(), labels, label_smoothing=cfg.label_smoothing)
            if cfg.loss == "soft":
                images, targets = batch
                return soft_target_ce(self.model(images), targets)
            if cfg.loss == "bce":  # the operator's targets are already smoothed and mixed
                images, targets = batch
                return bce_loss(self.model(images), targets, target_threshold=cfg.bce_target_thresh,
                                sum_classes=cfg.bce_sum)
            if cfg.loss == "pair":
                return pair_ce(self.model(batch.images), batch.labels, batch.index, batch.lam, cfg.label_smoothing)
            # MixupE: the clean batch goes through the same forward, so DDP sees one forward per backward
            n = batch.images.shape[0]
            logits = self.model(torch.cat([batch.images, batch.clean]))
            mix = pair_ce(logits[:n], batch.labels, batch.index, batch.lam, cfg.label_smoothing)
            return mixupe_loss(mix, logits[n:].float(), batch.labels, alpha=cfg.mixup_alpha, eta=cfg.mixupe_eta,
                               tau=cfg.mixupe_tau, num_classes=self.num_classes)

    def _optimize(self, batch):
        lr = self.schedule.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = self._loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.clip_grad is not None:  # on the true gradients: unscale fp16's first
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(_unwrap(self.model))
        self.step += 1
        return loss.detach(), lr

    # --- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model=None):
        """Top-1/top-5 of ``model`` (the trained one by default) over the whole val split, every sample counted
        once across ranks."""
        model = _unwrap(self.model) if model is None else model  # no DDP hooks: ranks may run different batches
        model.eval()
        counts = torch.zeros(3, dtype=torch.float64, device=self.device)
        k = min(5, self.num_classes)
        for images, labels in self.val_loader:
            with _autocast(self.device, self.cfg.amp):
                logits = model(images)
            top = logits.topk(k, dim=1).indices
            hit = top == labels.view(-1, 1)
            counts += torch.stack([hit[:, 0].sum(), hit.any(dim=1).sum(),
                                   torch.tensor(labels.numel(), device=self.device)]).to(torch.float64)
        model.train()
        if self.d.distributed:
            torch_dist.all_reduce(counts)
        top1, top5, n = counts.tolist()
        return {"top1": top1 / n, "top5": top5 / n, "val_samples": int(n)}

    # --- checkpoints ---------------------------------------------------------------------------
    def _check_finite_weights(self):
        """NonFiniteLoss naming the first NaN/Inf weight or buffer: a finite loss can still leave bad weights
        (an Inf gradient), and those are never checkpointed. One host sync; every rank checks its own copy."""
        tensors = [(name, t) for name, t in _unwrap(self.model).state_dict().items() if t.is_floating_point()]
        finite = torch.stack([torch.isfinite(t).all() for _, t in tensors]).tolist() if tensors else []
        if not all(finite):
            name = tensors[finite.index(False)][0]
            raise NonFiniteLoss(f"weights are not finite after step {self.step} ({name} holds NaN or Inf): stopped; "
                                f"the last good checkpoint {self.checkpoint_path} is kept")

    def save(self, reason):
        self._check_finite_weights()
        mine = {"iterator": self.train_loader.state_dict(), "rng": rng_state()}
        if self.d.distributed:
            gathered = [None] * self.d.world_size
            torch_dist.all_gather_object(gathered, mine)
        else:
            gathered = [mine]
        if self.d.is_main:
            state = {
                "format": CHECKPOINT_FORMAT, "reason": reason, "step": self.step, "epoch": self.train_loader.epoch,
                "epoch_step": self.train_loader.step, "world_size": self.d.world_size,
                "model": _unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "schedule": {"lr": self.schedule.lr_at(self.step), "steps_per_epoch": self.schedule.steps_per_epoch},
                "iterators": [g["iterator"] for g in gathered], "rng": [g["rng"] for g in gathered],
                "config": self.cfg.to_dict(), "last_eval": self.last_eval,
                "ema": None if self.ema is None else self.ema.state_dict(),
            }
            save_checkpoint(self.checkpoint_path, state)
        if self.d.distributed:
            torch_dist.barrier()

    # --- the run -------------------------------------------------------------------------------
    def _log(self, record):
        if self.metrics is not None:
            self.metrics.write(record)
        if self.tensorboard is not None:
            for key in ("loss", "lr", "images_per_s", "data_wait", "top1", "top5", "top1_ema", "top5_ema"):
                if key in record:
                    self.tensorboard.add_scalar(f"{record['kind']}/{key}", record[key], record["step"])

    def _flush(self, pending, window, bar):
        """One host sync for the buffered steps: check the losses, then log them."""
        if not pending:
            return
        losses = torch.stack([loss for _, loss, _, _ in pending]).float().tolist()
        for (step, _, lr, epoch), value in zip(pending, losses):
            if not math.isfinite(value):
                raise NonFiniteLoss(f"loss is {value} at step {step} (epoch {epoch}): stopped; the last good "
                                    f"checkpoint {self.checkpoint_path} is kept")
        elapsed = time.perf_counter() - window["start"]
        images_per_s = window["images"] * self.d.world_size / elapsed if elapsed > 0 else float("nan")
        wait = window["wait"] / elapsed if elapsed > 0 else float("nan")
        for (step, _, lr, epoch), value in zip(pending, losses):
            self._log({"kind": "step", "step": step, "epoch": epoch, "loss": value, "lr": lr,
                       "images_per_s": images_per_s, "data_wait": wait})
        if bar is not None:
            bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{pending[-1][2]:.4g}", img_s=f"{images_per_s:.0f}",
                            wait=f"{wait:.0%}")
        pending.clear()
        window.update(start=time.perf_counter(), images=0, wait=0.0)

    def fit(self):
        cfg = self.cfg
        total = cfg.epochs * len(self.train_loader)
        if cfg.max_steps is not None:
            total = min(total, cfg.max_steps)
        bar = tqdm(total=total, initial=min(self.step, total), desc="train", unit="step", dynamic_ncols=True) \
            if self.d.is_main else None
        pending, window = [], {"start": time.perf_counter(), "images": 0, "wait": 0.0}
        stopped = False
        try:
            while self.train_loader.epoch < cfg.epochs and not stopped:
                epoch = self.train_loader.epoch
                it = iter(self.train_loader)
                while True:
                    if cfg.max_steps is not None and self.step >= cfg.max_steps:
                        stopped = True
                        break
                    t0 = time.perf_counter()
                    try:
                        batch = next(it)
                    except StopIteration:
                        break
                    window["wait"] += time.perf_counter() - t0
                    loss, lr = self._optimize(batch)
                    window["images"] += batch[0].shape[0]
                    pending.append((self.step, loss, lr, epoch + 1))  # epochs counted from 1, as in the epoch records
                    if bar is not None:
                        bar.update(1)
                    if len(pending) >= cfg.log_every:
                        self._flush(pending, window, bar)
                    if cfg.checkpoint_every is not None and self.step % cfg.checkpoint_every == 0:
                        self._flush(pending, window, bar)
                        self.save("every")
                self._flush(pending, window, bar)
                if stopped:
                    break
                self.last_eval = {"epoch": epoch + 1, "step": self.step, **self.evaluate()}
                if self.ema is not None:
                    ema_eval = self.evaluate(self.ema.module)
                    self.last_eval.update(top1_ema=ema_eval["top1"], top5_ema=ema_eval["top5"])
                self._log({"kind": "epoch", **self.last_eval})
                if bar is not None:
                    bar.write(f"epoch {epoch + 1}/{cfg.epochs}: top-1 {self.last_eval['top1']:.4f}, "
                              f"top-5 {self.last_eval['top5']:.4f} on {self.last_eval['val_samples']} val images")
                self.save("epoch")
            if stopped:
                self.save("max_steps")
        finally:
            if bar is not None:
                bar.close()
        return {"step": self.step, "epoch": self.train_loader.epoch, "stopped_at_max_steps": stopped,
                "last_eval": self.last_eval}

    def close(self):
        if self.metrics is not None:
            self.metrics.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


def _write_json(path, value):
    """Write ``value`` to ``path`` as indented JSON, atomically; an OSError (a full disk) names ``path``."""
    write_atomically(path, json.dumps(value, indent=2))


def train(cfg):
    """Run (or resume, with ``cfg.resume``) one rank of a training run; returns rank 0's summary dict.

    Writes into ``cfg.output``: ``checkpoint.pt`` (at every epoch end, every
    ``checkpoint_every`` steps and at ``max_steps``), ``metrics.jsonl``,
    ``run.json`` (settings, versions, hardware, seed, git hash),
    ``summary.json`` and ``curves.png``.
    """
    world_size = dist.world_size()
    if cfg.global_batch_size % world_size:
        raise ValueError(f"global_batch_size {cfg.global_batch_size} does not divide evenly across "
                         f"{world_size} ranks")
    where = dist.setup(cfg.device, cfg.dist_timeout)
    trainer = None
    try:
        trainer = _Trainer(cfg, where)
        if where.is_main:
            device_name = torch.cuda.get_device_name(where.device) if where.device.type == "cuda" else "cpu"
            settings = {**cfg.to_dict(), "world_size": where.world_size, "num_classes": trainer.num_classes,
                        "steps_per_epoch": len(trainer.train_loader)}
            _write_json(os.path.join(trainer.output, "run.json"), run_record(settings, device_name))
        summary = trainer.fit()
        if where.is_main:
            _write_json(os.path.join(trainer.output, "summary.json"), summary)
            if summary["last_eval"] is not None or summary["step"] > 0:
                plot_metrics(trainer.metrics.path, os.path.join(trainer.output, "curves.png"))
        return summary
    finally:
        if trainer is not None:
            trainer.close()
        dist.teardown(where)
