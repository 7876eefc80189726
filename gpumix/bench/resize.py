"""What the training pipeline's antialiased resize costs on the CPU, against the aliased one, in one process.

The crop windows are decoded once (the training pipeline's own random crop,
``fn.decoders.image_random_crop``, on an ImageNet folder) and held in memory;
then ``train_resize`` with ``antialias=True`` and ``False`` resizes the same
windows in interleaved turns, and the whole training pipeline (decode, crop,
resize, flip) is timed in the same rounds for scale. Each figure is the
median over rounds of the milliseconds per batch, with its min-max; the
ratio of the two resizes is paired round by round.

    python -m gpumix.bench.resize [--data DIR] [--batch-size 64] [--threads 2] [--rounds 15]
"""
from __future__ import annotations

import argparse
import functools
import random
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from gpumix.bench.fields import add_round_flags
from gpumix.bench.harness import interleaved, seconds_for
from gpumix.bench.report import median_line

__all__ = ["main", "measure_resize"]


def _windows(data: str, batch_size: int, threads: int, seed: int) -> list[np.ndarray]:
    from nvidia.dali import fn, pipeline_def, types

    from gpumix.pipelines.imagenet import AREA, ASPECT, CROP_ATTEMPTS

    # device_id None (CPU only) is DALI's documented value; its stubs say int
    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=None, seed=seed)  # type: ignore[call-overload]
    def pipe():
        encoded, _ = fn.readers.file(file_root=data, random_shuffle=True, seed=seed)
        return fn.decoders.image_random_crop(encoded, device="cpu", output_type=types.RGB, random_area=AREA,
                                             random_aspect_ratio=ASPECT, num_attempts=CROP_ATTEMPTS)

    p = pipe()
    p.build()
    (out,) = p.run()
    return [np.array(out[i]) for i in range(len(out))]


def _resizer(windows: list[np.ndarray], crop: int, antialias: bool, threads: int) -> Any:
    from nvidia.dali import fn, pipeline_def

    from gpumix.pipelines.imagenet import train_resize

    @pipeline_def(batch_size=len(windows), num_threads=threads, device_id=None,  # type: ignore[call-overload]
                  prefetch_queue_depth=1)  # device_id None: CPU only
    def pipe():
        images = fn.external_source(source=lambda: windows, batch=True, layout="HWC")
        return train_resize(images, crop, antialias)

    p = pipe()
    p.build()
    return p


def _ms_per_batch(pipe: Any, batches: int) -> float:
    return 1000 * seconds_for(pipe.run, batches) / batches


def measure_resize(data: str, *, batch_size: int = 64, threads: int = 2, rounds: int = 15, batches: int = 10,
                   crop: int = 224, seed: int = 0) -> dict[str, list[float]]:
    """{name: [ms per batch, one per round]} for the two resizes and the whole training pipeline."""
    from gpumix.pipelines import imagenet_train

    windows = _windows(data, batch_size, threads, seed)
    pipes = {"antialiased resize (default)": _resizer(windows, crop, True, threads),
             "aliased resize (antialias=False)": _resizer(windows, crop, False, threads),
             "whole training pipeline (antialiased)": imagenet_train(data, batch_size=batch_size, crop=crop,
                                                                     device="cpu", num_threads=threads, seed=seed)}
    pipes["whole training pipeline (antialiased)"].build()
    for p in pipes.values():
        _ms_per_batch(p, 2)
    return interleaved({name: functools.partial(_ms_per_batch, p, batches) for name, p in pipes.items()}, rounds,
                       random.Random(seed))


def main(argv: Sequence[str] | None = None) -> int:
    """Time the two resizes and the whole pipeline and print ms/batch; 0 on success, 2 for bad flags."""
    p = argparse.ArgumentParser(prog="python -m gpumix.bench.resize", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--data", help="ImageNet class-folder root (default: gpumix-bench's embedded synthetic set)")
    add_round_flags(p, batch_size=64, threads=2, rounds=15, batches=10)
    args = p.parse_args(argv)
    if args.data is None:
        from gpumix.bench.data import default_data
        args.data = default_data()
    times = measure_resize(args.data, batch_size=args.batch_size, threads=args.threads, rounds=args.rounds,
                           batches=args.batches)
    print(f"{args.data}: batch {args.batch_size}, {args.threads} threads, median of {args.rounds} interleaved "
          f"turns of {args.batches} batches")
    for name, t in times.items():
        print(median_line(name, t, "ms/batch", width=40, digits=1))
    a, b = times["antialiased resize (default)"], times["aliased resize (antialias=False)"]
    ratios = [x / y for x, y in zip(a, b)]
    print(f"antialiased / aliased resize time, paired rounds: median {statistics.median(ratios):.2f} "
          f"({min(ratios):.2f}-{max(ratios):.2f})")
    extra = [x - y for x, y in zip(a, b)]
    whole = times["whole training pipeline (antialiased)"]
    print(f"antialiasing adds {statistics.median(extra):.1f} ms per batch, "
          f"{100 * statistics.median(extra) / statistics.median(whole):.1f}% of the whole pipeline's median")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
