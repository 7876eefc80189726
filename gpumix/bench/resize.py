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
import argparse
import statistics
import time

import numpy as np

__all__ = ["main", "measure_resize"]


def _windows(data, batch_size, threads, seed):
    from nvidia.dali import fn, pipeline_def, types

    from gpumix.pipelines.imagenet import AREA, ASPECT, CROP_ATTEMPTS

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=None, seed=seed)
    def pipe():
        encoded, _ = fn.readers.file(file_root=data, random_shuffle=True, seed=seed)
        return fn.decoders.image_random_crop(encoded, device="cpu", output_type=types.RGB, random_area=AREA,
                                             random_aspect_ratio=ASPECT, num_attempts=CROP_ATTEMPTS)

    p = pipe()
    p.build()
    (out,) = p.run()
    return [np.array(out[i]) for i in range(len(out))]


def _resizer(windows, crop, antialias, threads):
    from nvidia.dali import fn, pipeline_def

    from gpumix.pipelines.imagenet import train_resize

    @pipeline_def(batch_size=len(windows), num_threads=threads, device_id=None, prefetch_queue_depth=1)
    def pipe():
        images = fn.external_source(source=lambda: windows, batch=True, layout="HWC")
        return train_resize(images, crop, antialias)

    p = pipe()
    p.build()
    return p


def _timed(pipe, batches):
    t0 = time.perf_counter()
    for _ in range(batches):
        pipe.run()
    return 1000 * (time.perf_counter() - t0) / batches


def measure_resize(data, *, batch_size=64, threads=2, rounds=15, batches=10, crop=224, seed=0):
    """{name: [ms per batch, one per round]} for the two resizes and the whole training pipeline."""
    from gpumix.pipelines import imagenet_train

    windows = _windows(data, batch_size, threads, seed)
    pipes = {"antialiased resize (default)": _resizer(windows, crop, True, threads),
             "aliased resize (antialias=False)": _resizer(windows, crop, False, threads),
             "whole training pipeline (antialiased)": imagenet_train(data, batch_size=batch_size, crop=crop,
                                                                     device="cpu", num_threads=threads, seed=seed)}
    pipes["whole training pipeline (antialiased)"].build()
    for p in pipes.values():
        _timed(p, 2)
    times = {name: [] for name in pipes}
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        for name in rng.permutation(list(pipes)):
            times[name].append(_timed(pipes[name], batches))
    return times


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m gpumix.bench.resize", description=__doc__.splitlines()[0])
    p.add_argument("--data", help="ImageNet class-folder root (default: gpumix-bench's embedded synthetic set)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--batches", type=int, default=10, help="batches per turn")
    args = p.parse_args(argv)
    for name in ("batch_size", "threads", "rounds", "batches"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.data is None:
        from gpumix.bench.loaders import default_data
        args.data = default_data()
    times = measure_resize(args.data, batch_size=args.batch_size, threads=args.threads, rounds=args.rounds,
                           batches=args.batches)
    print(f"{args.data}: batch {args.batch_size}, {args.threads} threads, median of {args.rounds} interleaved "
          f"turns of {args.batches} batches")
    for name, t in times.items():
        print(f"{name:<40} {statistics.median(t):>8.1f} ms/batch  ({min(t):.1f}-{max(t):.1f})")
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
