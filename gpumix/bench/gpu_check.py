"""``gpumix-gpu-check``: everything that needs a GPU, in one command and one JSON.

1. The real-CUDA tests (``GPUMIX_TEST_REAL_CUDA=1``): every kernel
   specialization against the float64 reference, the hardware-vs-software
   fp16/bf16 rounding bit for bit, and, when DALI imports, the GPU iterator
   and pipelines.
2. The kernel alone, back to back on preallocated tensors, against a
   device-to-device copy of the same bytes, at each ``--batch-sizes`` for
   fp32 NCHW, bf16 channels_last and the other dtype/layout pairs.
3. The host's time per ``mix_normalize`` call beyond the kernel.
4. When DALI imports: end-to-end images/s of ``imagenet_train(device="gpu")``
   + ``MixupIterator`` (bf16, channels_last), with mixup and with
   normalization only, on the embedded synthetic set (or ``--data``).

Run it from the repository root (it runs the tests in ``tests/``) on a GPU
machine; it takes about 5 minutes on an H200. ``--device cpu`` runs the same
logic on the CPU (the CPU twin, the simulator's tests, the DALI CPU pipeline)
with whatever sizes are given, to check the command itself without a GPU.

    gpumix-gpu-check --json gpu-check.json
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from gpumix.bench import kernel_timing
from gpumix.bench.fields import at_least, float_range
from gpumix.bench.report import write_json
from gpumix.datasets import STATS
from gpumix.device import gpu_problem
from gpumix.runinfo import run_record

__all__ = ["pytest_command", "run_tests", "bandwidth", "end_to_end", "main"]

KERNEL_TESTS = ["tests/kernels"]
DALI_TESTS = ["tests/gpumix/test_iterator_gpu.py", "tests/pipelines/test_gpu_pipelines.py"]
LAYOUTS = [("float32", False), ("bfloat16", True), ("float32", True), ("bfloat16", False), ("float16", False),
           ("float16", True)]


def _dali_available() -> bool:
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return False
    return True


def pytest_command(device: str, dali: bool, tests_dir: str = "tests",
                   extra: Sequence[str] = ()) -> tuple[list[str], dict[str, str]]:
    """(argv, env) of the pytest run: real CUDA on a GPU, the simulator on the CPU; DALI's tests if it imports."""
    paths = [p.replace("tests", tests_dir, 1) for p in KERNEL_TESTS + (DALI_TESTS if dali else [])]
    env = dict(os.environ)
    if device == "cuda":
        env["GPUMIX_TEST_REAL_CUDA"] = "1"
    else:
        env.pop("GPUMIX_TEST_REAL_CUDA", None)
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths, *extra], env


def run_tests(device: str, dali: bool, tests_dir: str = "tests", extra: Sequence[str] = (),
              timeout: float = 420) -> dict[str, Any]:
    """Run the GPU tests; return the command, its exit code and pytest's passed/failed/skipped/error counts."""
    argv, env = pytest_command(device, dali, tests_dir, extra)
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as e:
        output, code = (e.stdout or "") if isinstance(e.stdout, str) else "", None
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", output)}
    return {"command": " ".join(argv[1:]), "real_cuda": device == "cuda", "returncode": code,
            "seconds": time.perf_counter() - started, **counts, "tail": output[-4000:]}


def bandwidth(device: torch.device, batch_sizes: Sequence[int], size: int, repeats: int) -> list[dict[str, Any]]:
    """``kernel_timing.kernel_bandwidth`` for every dtype/layout pair at every batch size."""
    rows = []
    for batch_size in batch_sizes:
        for dtype, channels_last in LAYOUTS:
            rows.append(kernel_timing.kernel_bandwidth(device, batch_size, size, getattr(torch, dtype), channels_last,
                                                       repeats=repeats))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def end_to_end(device: torch.device, data: str | None, batch_size: int, seconds: float,
               threads: int) -> dict[str, Any]:
    """Images/s of the DALI ImageNet train pipeline + MixupIterator (bf16 channels_last), mixup vs normalize only."""
    import gpumix
    from gpumix.pipelines import imagenet_train
    from gpumix.synthetic import make_dataset

    if data is None:
        data = os.path.join(tempfile.mkdtemp(prefix="gpumix-gpu-check-"), "imagenet")
        make_dataset("imagenet", data, classes=10, images_per_class=64, seed=0)
    mean, std = STATS["imagenet"].mean, STATS["imagenet"].std
    classes = len([e for e in os.listdir(data) if os.path.isdir(os.path.join(data, e))]) or 1000
    results: dict[str, Any] = {}
    for name, mixup in (("mixup", gpumix.Mixup(num_classes=max(classes, 2), alpha=0.2, seed=0)),
                        ("normalize_only", None)):
        pipe = imagenet_train(data, batch_size=batch_size, device="gpu" if device.type == "cuda" else "cpu",
                              num_threads=threads, seed=0)
        loader = gpumix.MixupIterator(pipe, mixup, mean=mean, std=std, dtype=torch.bfloat16, channels_last=True,
                                      last_batch_policy="drop")
        images, seen = 0, 0
        start: float | None = None
        while start is None or time.perf_counter() - start < seconds:  # epochs until the time is up
            for batch in loader:
                seen += 1
                if seen == 3:  # two warm-up batches: decoder allocations, kernel compilation
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                elif start is not None:
                    images += batch[0].shape[0]
                    if time.perf_counter() - start >= seconds:
                        break
        if device.type == "cuda":
            torch.cuda.synchronize()
        results[name] = {"images_per_s": images / (time.perf_counter() - start), "images": images}
    results["mixup_cost"] = 1 - results["mixup"]["images_per_s"] / results["normalize_only"]["images_per_s"]
    results.update(batch_size=batch_size, threads=threads, data=data, dtype="bfloat16", channels_last=True)
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; bad values exit 2 naming the flag (argparse's own checks)."""
    p = argparse.ArgumentParser(prog="gpumix-gpu-check", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                   help="cuda: the real GPU (fails without one); cpu: the same logic on the CPU; auto: cuda if usable")
    p.add_argument("--json", help="write every result here")
    p.add_argument("--batch-sizes", type=at_least(1), nargs="+", default=[256, 1024])
    p.add_argument("--image-size", type=at_least(1), default=224)
    p.add_argument("--repeats", type=at_least(1), default=7)
    p.add_argument("--seconds", type=float_range(0.0, low_open=True), default=10.0,
                   help="timed seconds of each end-to-end loader")
    p.add_argument("--e2e-batch-size", type=at_least(1), default=256)
    p.add_argument("--threads", type=at_least(1), default=8, help="DALI threads of the end-to-end pipeline")
    p.add_argument("--data", help="ImageNet class-folder root for the end-to-end run (default: synthetic)")
    p.add_argument("--tests-dir", default="tests", help="the project's tests folder (run from the repository root)")
    p.add_argument("--pytest-args", nargs=argparse.REMAINDER, default=[], help="extra arguments for pytest")
    p.add_argument("--skip", nargs="+", default=[], choices=("tests", "bandwidth", "host", "e2e"))
    args = p.parse_args(argv)
    if "tests" not in args.skip and not os.path.isdir(args.tests_dir):
        p.error(f"--tests-dir: {args.tests_dir} is not a folder (run from the repository root, or --skip tests)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every GPU check and print a summary; 0 if all passed, 1 if a test or a step failed."""
    args = parse_args(argv)
    problem = gpu_problem()
    if args.device == "cuda" and problem:
        raise SystemExit(f"gpumix-gpu-check --device cuda: {problem}")
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and not problem) else "cpu")
    dali = _dali_available()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    report: dict[str, Any] = {"run": run_record({k: v for k, v in vars(args).items()}, name), "dali": dali}

    def step(title: str, key: str, fn: Callable[[], Any]) -> None:
        if key in args.skip:
            report[key] = {"skipped": "--skip"}
            return
        print(f"gpumix-gpu-check: {title} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            report[key] = fn()
        except Exception as e:  # record and go on: one failing part must not hide the others' figures
            report[key] = {"error": f"{type(e).__name__}: {e}"}
        print(f"gpumix-gpu-check: {title} took {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        if args.json:  # after every step, so a run stopped by a time limit keeps what it measured
            write_json(args.json, report, default=str)

    step("tests", "tests", lambda: run_tests(device.type, dali, args.tests_dir, args.pytest_args))
    step("kernel bandwidth", "bandwidth", lambda: bandwidth(device, args.batch_sizes, args.image_size, args.repeats))
    step("host overhead", "host", lambda: kernel_timing.host_overhead(device, 256))
    if dali:
        step("end to end", "e2e", lambda: end_to_end(device, args.data, args.e2e_batch_size, args.seconds,
                                                      args.threads))
    else:
        report["e2e"] = {"skipped": "nvidia.dali does not import (see ../shared/gpu/README.md)"}
    _print(report)
    tests = report.get("tests", {})
    failed = tests.get("returncode") not in (0, None) if "returncode" in tests else False
    errors = [k for k, v in report.items() if isinstance(v, dict) and "error" in v]
    return 1 if failed or errors else 0


def _print(report: dict[str, Any]) -> None:
    tests = report.get("tests", {})
    if "returncode" in tests:
        print(f"tests ({'real CUDA' if tests['real_cuda'] else 'simulator'}): exit {tests['returncode']}, "
              f"{tests.get('passed', 0)} passed, {tests.get('failed', 0)} failed, {tests.get('skipped', 0)} skipped")
    for r in report.get("bandwidth", []) if isinstance(report.get("bandwidth"), list) else []:
        layout = "channels_last" if r["channels_last"] else "NCHW"
        print(f"B={r['batch_size']:<5} {r['dtype']:<9} {layout:<13} kernel {r['kernel_s'] * 1e6:8.1f} us "
              f"{r['kernel_GBps']:7.1f} GB/s = {r['fraction_of_copy']:.2f} of a copy of the same bytes")
    host = report.get("host", {})
    if "host_us" in host:
        print(f"host per call at B=256: {host['host_us']:.0f} us beyond the kernel")
    e2e = report.get("e2e", {})
    if "mixup" in e2e:
        print(f"end to end (bf16 channels_last, B={e2e['batch_size']}): {e2e['mixup']['images_per_s']:.0f} img/s with "
              f"mixup, {e2e['normalize_only']['images_per_s']:.0f} normalize only ({100 * e2e['mixup_cost']:+.1f}%)")
    for key, value in report.items():
        if isinstance(value, dict) and ("error" in value or "skipped" in value):
            print(f"{key}: {value.get('error') or 'skipped: ' + value['skipped']}")


if __name__ == "__main__":
    raise SystemExit(main())
