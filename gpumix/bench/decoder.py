"""The GPU decoder's knobs on the ImageNet training pipeline: images/s and GPU memory, on a GPU.

For each ``hw_decoder_load`` x DALI thread count, and for the decoder memory
settings gpumix used before (211 MB device, 140 MB host padding per thread),
it builds ``imagenet_train(device="gpu")`` in this process, warms it up, and
times ``--batches`` batches (outputs synchronized), in interleaved rounds;
each row is the median images/s over rounds with its min-max, and the GPU
memory the pipeline added while it was built and warmed up
(``gpumix.bench.main.GpuMemory``). Needs a CUDA GPU.

    python -m gpumix.bench.decoder --data /data/imagenet/train --loads 0 0.65 0.9 1 --threads 2 4 8
"""
import argparse
import json
import statistics
import sys
import time

__all__ = ["main", "settings_grid", "OLD_PADDINGS"]

# What gpumix's decoder used before issue 14 (NVIDIA's older ResNet-50 example values).
OLD_PADDINGS = {"device_memory_padding": 211025920, "host_memory_padding": 140544512}


def settings_grid(loads, threads):
    """[(label, DecoderConfig keyword arguments, threads)]: every load x thread count, then the old paddings."""
    grid = [(f"hw_decoder_load {load:g}, {t} threads", {"hw_decoder_load": load}, t) for load in loads
            for t in threads]
    t = max(threads)
    grid.append((f"hw_decoder_load 0.65, {t} threads, old paddings (211 MB / 140 MB)", dict(OLD_PADDINGS), t))
    return grid


def _run(data, grid, *, batch_size, batches, rounds, warmup):
    import torch

    from gpumix.bench.main import GpuMemory
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
    rates = {label: [] for label in pipes}
    for r in range(rounds):
        for label in (list(pipes) if r % 2 == 0 else list(pipes)[::-1]):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(batches):
                images, _ = pipes[label].run()
                images.as_tensor()  # the batch is complete
            torch.cuda.synchronize()
            rates[label].append(batches * batch_size / (time.perf_counter() - t0))
    return [{"settings": label, "images_per_s": statistics.median(rates[label]), "min": min(rates[label]),
             "max": max(rates[label]), "gpu_memory_added_bytes": memory[label]} for label in pipes]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m gpumix.bench.decoder", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="an ImageNet class-folder root, file list or shards folder")
    p.add_argument("--loads", type=float, nargs="+", default=[0.0, 0.65, 0.9, 1.0])
    p.add_argument("--threads", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--batches", type=int, default=20, help="timed batches per turn")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args(argv)
    for load in args.loads:
        if not 0.0 <= load <= 1.0:
            p.error(f"--loads must be in [0, 1], got {load}")
    for name in ("batch_size", "batches", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if min(args.threads) < 1:
        p.error(f"--threads must be >= 1, got {min(args.threads)}")
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
        from gpumix.runinfo import run_record

        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"run": run_record(vars(args), torch.cuda.get_device_name()), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
