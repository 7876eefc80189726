"""The training loop: DDP over already-mixed batches, evaluation, checkpoints, metrics and exact resume.

``train(cfg)`` runs one rank of a run (torchrun starts one per GPU or CPU
worker). Every rank builds its own shard's pipelines; rank 0 writes the
checkpoint, the metrics, the run record and the plot into ``cfg.output``.
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from tqdm import tqdm

from gpumix.atomic import write_atomically
from gpumix.runinfo import run_record
from gpumix.train import dist as distributed
from gpumix.train.builder import build_training
from gpumix.train.checkpoint import CHECKPOINT_NAME, prepare_output, rng_state, save_checkpoint, training_state
from gpumix.train.config import TrainConfig
from gpumix.train.dist import Dist
from gpumix.train.losses import bce_loss, mixupe_loss, pair_ce, soft_target_ce
from gpumix.train.metrics import MetricsLog, plot_metrics

__all__ = ["train", "NonFiniteLoss"]


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
    """One rank's run: the parts ``build_training`` makes, wired to the steps, evaluation, checkpoints and logs."""

    def __init__(self, cfg: TrainConfig, dist: Dist) -> None:
        self.cfg, self.dist = cfg, dist
        self.device = dist.device
        self.output = os.path.abspath(cfg.output)
        self.checkpoint_path = os.path.join(self.output, CHECKPOINT_NAME)
        parts = build_training(cfg, dist, prepare_output(cfg, self.output, dist))
        self.num_classes = parts.num_classes
        self.train_loader, self.val_loader = parts.train_loader, parts.val_loader
        self.schedule, self.model, self.optimizer = parts.schedule, parts.model, parts.optimizer
        self.scaler, self.ema = parts.scaler, parts.ema
        self.step, self.last_eval = parts.step, parts.last_eval
        self.metrics = MetricsLog(self.output, keep_through_step=self.step) if dist.is_main else None
        self.tensorboard = self._tensorboard() if dist.is_main and cfg.tensorboard else None

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
        top_k = min(5, self.num_classes)
        for images, labels in self.val_loader:
            with _autocast(self.device, self.cfg.amp):
                logits = model(images)
            top = logits.topk(top_k, dim=1).indices
            hit = top == labels.view(-1, 1)
            counts += torch.stack([hit[:, 0].sum(), hit.any(dim=1).sum(),
                                   torch.tensor(labels.numel(), device=self.device)]).to(torch.float64)
        model.train()
        if self.dist.distributed:
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
        this_rank = {"iterator": self.train_loader.state_dict(), "rng": rng_state()}
        if self.dist.distributed:
            by_rank: list[Any] = [None] * self.dist.world_size
            torch_dist.all_gather_object(by_rank, this_rank)
        else:
            by_rank = [this_rank]
        if self.dist.is_main:
            state = training_state(
                reason=reason, step=self.step, epoch=self.train_loader.epoch, epoch_step=self.train_loader.step,
                world_size=self.dist.world_size, model=_unwrap(self.model), optimizer=self.optimizer,
                scaler=self.scaler,
                schedule={"lr": self.schedule.lr_at(self.step), "steps_per_epoch": self.schedule.steps_per_epoch},
                iterators=[r["iterator"] for r in by_rank], rngs=[r["rng"] for r in by_rank],
                config=self.cfg.to_dict(), last_eval=self.last_eval, ema=self.ema)
            save_checkpoint(self.checkpoint_path, state)
        if self.dist.distributed:
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
        images_per_s = window["images"] * self.dist.world_size / elapsed if elapsed > 0 else float("nan")
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
            if self.dist.is_main else None
        pending, window = [], {"start": time.perf_counter(), "images": 0, "wait": 0.0}
        stopped = False
        try:
            while self.train_loader.epoch < cfg.epochs and not stopped:
                epoch = self.train_loader.epoch
                batches = iter(self.train_loader)
                while True:
                    if cfg.max_steps is not None and self.step >= cfg.max_steps:
                        stopped = True
                        break
                    wait_start = time.perf_counter()
                    try:
                        batch = next(batches)
                    except StopIteration:
                        break
                    window["wait"] += time.perf_counter() - wait_start
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


def _write_json(path: str, value: Any) -> None:
    """Write ``value`` to ``path`` as indented JSON, atomically; an OSError (a full disk) names ``path``."""
    write_atomically(path, json.dumps(value, indent=2))


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume, with ``cfg.resume``) one rank of a training run; returns rank 0's summary dict.

    Writes into ``cfg.output``: ``checkpoint.pt`` (at every epoch end, every
    ``checkpoint_every`` steps and at ``max_steps``), ``metrics.jsonl``,
    ``run.json`` (settings, versions, hardware, seed, git hash),
    ``summary.json`` and ``curves.png``.
    """
    world_size = distributed.world_size()
    if cfg.global_batch_size % world_size:
        raise ValueError(f"global_batch_size {cfg.global_batch_size} does not divide evenly across "
                         f"{world_size} ranks")
    dist = distributed.setup(cfg.device, cfg.dist_timeout)
    trainer = None
    try:
        trainer = _Trainer(cfg, dist)
        if dist.is_main:
            device_name = torch.cuda.get_device_name(dist.device) if dist.device.type == "cuda" else "cpu"
            settings = {**cfg.to_dict(), "world_size": dist.world_size, "num_classes": trainer.num_classes,
                        "steps_per_epoch": len(trainer.train_loader)}
            _write_json(os.path.join(trainer.output, "run.json"), run_record(settings, device_name))
        summary = trainer.fit()
        if trainer.metrics is not None:  # rank 0's
            _write_json(os.path.join(trainer.output, "summary.json"), summary)
            if summary["last_eval"] is not None or summary["step"] > 0:
                plot_metrics(trainer.metrics.path, os.path.join(trainer.output, "curves.png"))
        return summary
    finally:
        if trainer is not None:
            trainer.close()
        distributed.teardown(dist)
