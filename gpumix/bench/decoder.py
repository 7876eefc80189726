"""The GPU decoder's knobs on the ImageNet training pipeline: images/s and GPU memory, on a GPU.

For each ``hw_decoder_load`` x DALI thread count, and for the decoder memory
settings gpumix used before (211 MB device, 140 MB host padding per thread),
it builds ``imagenet_train(device="gpu")`` in this process, warms it up, and
times ``--batches`` batches (outputs synchronized), in interleaved rounds;
each row is the median images/s over rounds with its min-max, and the GPU
memory the pipeline added while it was built and warmed up
(``gpumix.bench.memory.GpuMemory``). Needs a CUDA GPU.

    python -m gpumix.bench.decoder --data /data/imagenet/train --loads 0 0.65 0.9 1 --threads 2 4 8
"""
from __future__ import annotations

import argparse
import functools
import statistics
import sys
from collections.abc import Sequence
from typing import Any

from gpumix.bench.fields import at_least, float_range
from gpumix.bench.harness import interleaved, seconds_for

__all__ = ["main", "settings_grid", "OLD_PADDINGS"]

# What gpumix's decoder used before issue 14 (NVIDIA's older ResNet-50 example values).
OLD_PADDINGS = {"device_memory_padding": 211025920, "host_memory_padding": 140544512}


def settings_grid(loads: Sequence[float], threads: Sequence[int]) -> list[tuple[str, dict[str, Any], int]]:
    """[(label, DecoderConfig keyword arguments, threads)]: every load x thread count, then the old paddings."""
    grid: list[tuple[str, dict[str, Any], int]] = [
        (f"hw_decoder_load {load:g}, {t} threads", {"hw_decoder_load": load}, t) for load in loads for t in threads]
    t = max(threads)
    grid.append((f"hw_decoder_load 0.65, {t} threads, old paddings (211 MB / 140 MB)", dict(OLD_PADDINGS), t))
    return grid


def _run(data: str, grid: list[tuple[str, dict[str, Any], int]], *, batch_size: int, batches: int, rounds: int,
         warmup: int) -> list[dict[str, Any]]:
    import torch

    from gpumix.bench.memory import GpuMemory
    from gpumix.pipelines import DecoderConfig, imagenet_train

    pipes, memory = {}, {}
    for label, knobs, threads in grid:
        with GpuMemory(True) as mem:
            pipe = imagenet_train(data, batch_size=batch_size, device="gpu", num_threads=threads,
                                  decoder=DecoderConfig(**knobs))
            pipe.build()
            for _ in range(warmup):
                pipe.run()
        pipes[label], memory[label] = pipe, mem.added

    def turn(pipe: Any) -> float:
        def timed_batches() -> None:
            for _ in range(batches):
                images, _ = pipe.run()
                images.as_tensor()  # the batch is complete
            torch.cuda.synchronize()

        torch.cuda.synchronize()
        return batches * batch_size / seconds_for(timed_batches, 1)

    rates = interleaved({label: functools.partial(turn, pipe) for label, pipe in pipes.items()}, rounds)
    return [{"settings": label, "images_per_s": statistics.median(rates[label]), "min": min(rates[label]),
             "max": max(rates[label]), "gpu_memory_added_bytes": memory[label]} for label in pipes]


def main(argv: Sequence[str] | None = None) -> int:
    """Sweep the decoder's knobs on the GPU and print images/s and GPU MB; 2 without a GPU or for bad flags."""
    p = argparse.ArgumentParser(prog="python -m gpumix.bench.decoder", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--data", required=True, help="an ImageNet class-folder root, file list or shards folder")
    p.add_argument("--loads", type=float_range(0.0, 1.0), nargs="+", default=[0.0, 0.65, 0.9, 1.0])
    p.add_argument("--threads", type=at_least(1), nargs="+", default=[2, 4, 8])
    p.add_argument("--batch-size", type=at_least(1), default=256)
    p.add_argument("--batches", type=at_least(1), default=20, help="timed batches per turn")
    p.add_argument("--rounds", type=at_least(1), default=5)
    p.add_argument("--warmup", type=at_least(0), default=5)
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpumix.bench.decoder: error: needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    rows = _run(args.data, settings_grid(args.loads, args.threads), batch_size=args.batch_size,
                batches=args.batches, rounds=args.rounds, warmup=args.warmup)
    print(f"{torch.cuda.get_device_name()}: imagenet_train on the GPU, batch {args.batch_size}, median of "
          f"{args.rounds} interleaved turns of {args.batches} batches")
    for r in rows:
        print(f"{r['settings']:<60} {r['images_per_s']:>8.0f} img/s ({r['min']:.0f}-{r['max']:.0f})  "
              f"GPU {r['gpu_memory_added_bytes'] / 2**20:>6.0f} MB")
    if args.json:
        from gpumix.bench.report import write_json
        from gpumix.runinfo import run_record

        write_json(args.json, {"run": run_record(vars(args), torch.cuda.get_device_name()), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
