"""Operator microbenchmark: the fused ``mix_normalize`` against the chains users write today.

All variants run in one process, on the same uint8 batch, the same mix
parameters and the same threads. Each figure is the median of ``--repeats``
timed calls after ``--warmup`` untimed ones, with min and max shown.

    gpumix-bench-operator --batch-size 256 --json op.json
"""
import argparse
import json
import statistics
import time

import numba
import torch

import gpumix
from gpumix.bench import chains
from gpumix.runinfo import run_record

__all__ = ["main", "run"]

# torchvision's ImageNet statistics, in pixel units.
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _timer(device):
    if device.type == "cuda":
        def timed(fn):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            return start.elapsed_time(stop) / 1e3
    else:
        def timed(fn):
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
    return timed


def _measure(fn, device, warmup, repeats):
    timed = _timer(device)
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = [timed(fn) for _ in range(repeats)]
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "peak_bytes": peak}


def _variants(args, batch, labels, params, dtype):
    common = dict(mean=MEAN, std=STD, dtype=dtype, channels_last=args.channels_last)
    k = args.num_classes
    found = {
        "gpumix fused": lambda: gpumix.mix_normalize(batch, labels, params, num_classes=k, **common),
        "unfused torch chain": lambda: chains.unfused_chain(batch, labels, params, num_classes=k, **common),
    }
    try:
        from timm.data import Mixup as TimmMixup
    except ImportError:
        TimmMixup = None
    if TimmMixup is not None and args.batch_size % 2 == 0:  # timm asserts an even batch
        for mode in ("batch", "elem"):
            fn = TimmMixup(mixup_alpha=args.alpha, mode=mode, num_classes=k, label_smoothing=0.0)
            found[f"timm Mixup ({mode})"] = (lambda f: lambda: chains.timm_chain(f, batch, labels, **common))(fn)
    from torchvision.transforms import v2
    tv = v2.MixUp(alpha=args.alpha, num_classes=k)
    found["torchvision v2.MixUp"] = lambda: chains.torchvision_chain(tv, batch, labels, **common)
    return found


def run(args):
    """Run every variant; return the JSON-ready result dict."""
    device = torch.device("cuda" if args.device == "gpu" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    gen = torch.Generator().manual_seed(args.seed)
    size = (args.batch_size, args.size, args.size, 3)
    batch = torch.randint(0, 256, size, dtype=torch.uint8, generator=gen).to(device)
    labels = torch.randint(0, args.num_classes, (args.batch_size,), generator=gen)
    params = gpumix.Mixup(num_classes=args.num_classes, alpha=args.alpha, seed=args.seed).sample(
        args.batch_size, (args.size, args.size), epoch=0, step=0)
    labels_dev = labels.to(device)

    # Same answer first: the fused result must match the unfused chain on this very batch.
    fused_img, fused_tgt = gpumix.mix_normalize(batch, labels, params, mean=MEAN, std=STD,
                                                num_classes=args.num_classes, dtype=dtype,
                                                channels_last=args.channels_last)
    ref_img, ref_tgt = chains.unfused_chain(batch, labels, params, mean=MEAN, std=STD, num_classes=args.num_classes,
                                            dtype=torch.float32, channels_last=args.channels_last)
    max_err = float((fused_img.float() - ref_img).abs().max())
    del fused_img, fused_tgt, ref_img, ref_tgt

    results = []
    variants = _variants(args, batch, labels_dev if device.type == "cuda" else labels, params, dtype)
    for name, fn in variants.items():
        stats = _measure(fn, device, args.warmup, args.repeats)
        results.append({"name": name, "images_per_s": args.batch_size / stats["median_s"], **stats})
        print(f"  measured {name}", flush=True)

    out_bytes = batch.numel() * torch.empty((), dtype=dtype).element_size()
    bandwidth = None
    if device.type == "cuda":
        src = torch.empty(out_bytes, dtype=torch.uint8, device=device)
        dst = torch.empty_like(src)
        copy = _measure(lambda: dst.copy_(src), device, args.warmup, args.repeats)
        fused_s = results[0]["median_s"]
        kernel_bytes = 2 * batch.numel() + out_bytes  # x_i and x_j read, output written
        bandwidth = {"copy_GBps": 2 * out_bytes / copy["median_s"] / 1e9,
                     "fused_GBps": kernel_bytes / fused_s / 1e9}
        bandwidth["fraction_of_copy"] = bandwidth["fused_GBps"] / bandwidth["copy_GBps"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    settings["threads"] = torch.get_num_threads()
    settings["numba_threads"] = numba.get_num_threads()
    return {"run": run_record(settings, name), "max_abs_diff_vs_unfused": max_err,
            "results": results, "bandwidth": bandwidth}


def format_table(report):
    rows = report["results"]
    fused = rows[0]["images_per_s"]
    lines = [f"{'variant':<24} {'images/s':>10} {'median ms':>10} {'min-max ms':>15} {'gpumix is':>10}"]
    for r in rows:
        spread = f"{r['min_s'] * 1e3:.1f}-{r['max_s'] * 1e3:.1f}"
        lines.append(f"{r['name']:<24} {r['images_per_s']:>10.0f} {r['median_s'] * 1e3:>10.1f} "
                     f"{spread:>15} {fused / r['images_per_s']:>9.1f}x")
    bw = report["bandwidth"]
    if bw:
        lines.append(f"fused kernel {bw['fused_GBps']:.0f} GB/s = {100 * bw['fraction_of_copy']:.0f}% of a "
                     f"device-to-device copy ({bw['copy_GBps']:.0f} GB/s)")
    lines.append(f"max |fused - unfused| = {report['max_abs_diff_vs_unfused']:.2e}")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="gpumix-bench-operator", description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("auto", "gpu", "cpu"), default="auto")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--size", type=int, default=224, help="image side in pixels")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--alpha", type=float, default=0.2)
    p.add_argument("--dtype", choices=tuple(DTYPES), default="fp32")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch and numba threads (default: all cores)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results and the run record here")
    args = p.parse_args(argv)
    for name in ("batch_size", "size", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.device == "gpu" and not torch.cuda.is_available():
        p.error("--device gpu: torch.cuda.is_available() is False on this machine")
    return args


def main(argv=None):
    args = parse_args(argv)
    report = run(args)
    print(format_table(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
