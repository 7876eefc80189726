"""Loader benchmark: gpumix's DALI ImageNet train pipeline against torchvision ImageFolder + DataLoader.

Both sides read the same JPEG folder, random-resized-crop to 224 with a random
flip, and deliver uint8 HWC (DALI) or CHW (torchvision) batches, on the same
cores, in one process. DALI variants show what its tuning knobs buy: ROI
decoding against a full decode, thread count and prefetch depth. Each figure
is images/s over ``--batches`` batches after ``--warmup`` batches, median of
``--repeats``. The end-to-end comparison, mixup included, is ``gpumix-bench``
(``gpumix.bench.main``); this one looks at the DALI pipeline's own knobs.

    gpumix-bench-pipeline [--data DIR] [--batch-size 64] --json loader.json
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from nvidia.dali import fn, pipeline_def, types

from gpumix.bench.data import default_data
from gpumix.bench.fields import at_least
from gpumix.bench.harness import seconds_for
from gpumix.bench.report import write_json
from gpumix.pipelines import imagenet_train
from gpumix.pipelines.imagenet import AREA, ASPECT, CROP_ATTEMPTS
from gpumix.runinfo import run_record

__all__ = ["main"]


@pipeline_def
def _full_decode_train(root, crop):
    # The same augmentation without ROI decoding: decode the whole image, then crop.
    jpegs, labels = fn.readers.file(file_root=root, name="Reader", shuffle_after_epoch=True, pad_last_batch=True)
    images = fn.decoders.image(jpegs, device="cpu", output_type=types.RGB)
    images = fn.random_resized_crop(images, size=(crop, crop), random_area=AREA, random_aspect_ratio=ASPECT,
                                    num_attempts=CROP_ATTEMPTS, antialias=True)  # as train_resize
    images = fn.crop_mirror_normalize(images, dtype=types.UINT8, output_layout="HWC",
                                      mirror=fn.random.coin_flip(probability=0.5))
    return images, labels


def _dali_rate(pipe: Any, batch_size: int, warmup: int, batches: int) -> float:
    pipe.build()
    for _ in range(warmup):
        pipe.run()
    return batch_size * batches / seconds_for(pipe.run, batches)


def _torchvision_rate(root: str, batch_size: int, workers: int, warmup: int, batches: int) -> float:
    from torchvision import datasets, transforms
    tf = transforms.Compose([transforms.RandomResizedCrop(224, scale=AREA, ratio=ASPECT),
                             transforms.RandomHorizontalFlip(), transforms.PILToTensor()])
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(root, tf), batch_size=batch_size, shuffle=True,
                                         num_workers=workers, drop_last=True, persistent_workers=workers > 0)
    need = warmup + batches
    done, t0 = 0, time.perf_counter()
    while done < need:
        for _ in loader:
            done += 1
            if done == warmup:
                t0 = time.perf_counter()
            if done == need:
                break
    return batch_size * batches / (time.perf_counter() - t0)


def main(argv: Sequence[str] | None = None) -> int:
    """Time the DALI pipeline's variants and torchvision's loader; print the table, write the JSON if asked."""
    p = argparse.ArgumentParser(prog="gpumix-bench-pipeline", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--data", help="ImageNet class-folder root (default: a cached synthetic set)")
    p.add_argument("--batch-size", type=at_least(1), default=64)
    p.add_argument("--batches", type=at_least(1), default=10, help="timed batches per measurement")
    p.add_argument("--warmup", type=at_least(0), default=3)
    p.add_argument("--repeats", type=at_least(1), default=3)
    p.add_argument("--json", metavar="PATH", help="write the rows and the run record here")
    args = p.parse_args(argv)
    root = args.data or default_data()
    cores = os.cpu_count() or 1
    b = args.batch_size
    variants: dict[str, Callable[[], Any]] = {
        f"DALI gpumix train, ROI decode, {cores} threads, prefetch 2":
            lambda: imagenet_train(root, batch_size=b, device="cpu", num_threads=cores),
        "DALI gpumix train, ROI decode, 1 thread, prefetch 2":
            lambda: imagenet_train(root, batch_size=b, device="cpu", num_threads=1),
        f"DALI gpumix train, ROI decode, {cores} threads, prefetch 1":
            lambda: imagenet_train(root, batch_size=b, device="cpu", num_threads=cores, prefetch_queue_depth=1),
        f"DALI gpumix train, ROI decode, {cores} threads, prefetch 3":
            lambda: imagenet_train(root, batch_size=b, device="cpu", num_threads=cores, prefetch_queue_depth=3),
        f"DALI full decode + random_resized_crop, {cores} threads":
            lambda: _full_decode_train(root, 224, batch_size=b, num_threads=cores, device_id=None),
    }
    rows: list[dict[str, Any]] = []

    def add_row(name: str, rate: Callable[[], float]) -> None:
        rates = [rate() for _ in range(args.repeats)]
        rows.append({"name": name, "images_per_s": statistics.median(rates), "min": min(rates), "max": max(rates)})
        print(f"  measured {name}", flush=True)

    for name, build in variants.items():
        add_row(name, lambda: _dali_rate(build(), b, args.warmup, args.batches))
    add_row(f"torchvision ImageFolder + DataLoader, {cores} workers",
            lambda: _torchvision_rate(root, b, cores, args.warmup, args.batches))
    best = rows[0]["images_per_s"]
    print(f"{'loader':<58} {'images/s':>9} {'min-max':>13} {'vs first':>9}")
    for r in rows:
        print(f"{r['name']:<58} {r['images_per_s']:>9.0f} {r['min']:>6.0f}-{r['max']:<6.0f} "
              f"{r['images_per_s'] / best:>8.2f}x")
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        settings["data"] = root
        write_json(args.json, {"run": run_record(settings, "cpu"), "results": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
