"""The timing harness: timed calls, loaders measured in interleaved turns, and the paired-round figures."""
from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from gpumix.bench.memory import GpuMemory, HostMemory

if TYPE_CHECKING:
    from gpumix.bench.variants import Variant

__all__ = ["ADJACENT", "CONFIDENCE", "REFILL_MARGIN", "auto_augment_cost", "interleaved", "measure",
           "median_interval", "paired_calls", "paired_overhead", "seconds_for", "time_calls"]

# The clock every CPU timing reads; tests replace it to prove figures are measured.
_clock = time.perf_counter
# After a turn, wait this many times the time its loader needs to refill what it prefetches (its
# stock of ready batches at its measured rate), so the next turn starts on an idle machine.
REFILL_MARGIN = 1.5
# The variants whose paired ratios are reported (mixup's and antialiasing's costs): their turns are adjacent.
ADJACENT = ("gpumix", "normalize_only", "gpumix_aliased")
# The confidence level of the paired calls' interval for their median ratio (``median_interval``).
CONFIDENCE = 0.95


def time_calls(device: torch.device, fn: Callable[[], Any], repeats: int, warmup: int = 0,
               per_call: int = 1) -> list[float]:
    """Seconds per call of ``fn()``, one figure per repeat, after ``warmup`` untimed calls.

    On CUDA each figure is CUDA events around ``per_call`` back-to-back
    calls; on the CPU, ``_clock`` around them.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(per_call):
                fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) / 1e3 / per_call)
        else:
            t0 = _clock()
            for _ in range(per_call):
                fn()
            times.append((_clock() - t0) / per_call)
    return times


def paired_calls(device: torch.device, base: Callable[[], Any], other: Callable[[], Any], pairs: int,
                 warmup: int = 0) -> dict[str, Any]:
    """``other``'s cost over ``base``, timed in ``pairs`` adjacent pairs of calls in one process.

    The two calls of a pair run back to back, the first one alternating
    between them, so a slow spell of the machine hits both sides alike.
    Returns the median of the per-pair ratios ``t(other) / t(base) - 1`` as
    ``median``, its 95% confidence interval ``ci_low``/``ci_high``
    (``median_interval``; None for fewer than 6 pairs), the quartiles
    ``q1``/``q3``, both sides' median seconds and ``per_pair``.
    """
    for _ in range(warmup):
        base()
        other()
    base_s: list[float] = []
    other_s: list[float] = []
    for k in range(pairs):
        first, second = (base, other) if k % 2 == 0 else (other, base)
        t_first, t_second = time_calls(device, first, 1)[0], time_calls(device, second, 1)[0]
        base_s.append(t_first if k % 2 == 0 else t_second)
        other_s.append(t_second if k % 2 == 0 else t_first)
    per_pair = [o / b - 1 for o, b in zip(other_s, base_s)]
    q1, _, q3 = statistics.quantiles(per_pair, n=4) if pairs > 1 else (per_pair[0],) * 3
    ci_low, ci_high = median_interval(per_pair, CONFIDENCE)
    return {"pairs": pairs, "median": statistics.median(per_pair), "ci_low": ci_low, "ci_high": ci_high,
            "ci_level": CONFIDENCE, "q1": q1, "q3": q3,
            "base_median_s": statistics.median(base_s), "other_median_s": statistics.median(other_s),
            "per_pair": per_pair}


def median_interval(values: Sequence[float], level: float) -> tuple[float | None, float | None]:
    """A distribution-free ``level`` confidence interval for the median of the population ``values`` come from.

    The sign test's interval: the sorted values' ``k``-th smallest and
    ``k``-th largest, with the largest ``k`` for which it holds the median
    with probability ``1 - 2 P(Bin(n, 1/2) < k) >= level``, whatever the
    distribution (``scipy.stats.quantile_test(values, p=0.5)`` gives the same
    interval). ``(None, None)`` where even the whole range falls short of
    ``level`` (5 values or fewer at 0.95).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    ordered = sorted(values)
    n = len(ordered)
    k, below, ways = 0, 0.0, 1  # ways: C(n, i), exact
    for i in range(n // 2):
        below += ways / 2 ** n  # P(Bin(n, 1/2) <= i)
        if 1 - 2 * below < level:
            break
        k = i + 1
        ways = ways * (n - i) // (i + 1)
    if k == 0:
        return None, None
    return ordered[k - 1], ordered[n - k]


def seconds_for(fn: Callable[[], Any], calls: int) -> float:
    """Wall seconds (``_clock``) of ``calls`` back-to-back calls of ``fn()``."""
    t0 = _clock()
    for _ in range(calls):
        fn()
    return _clock() - t0


def interleaved(turns: dict[str, Callable[[], float]], rounds: int,
                rng: random.Random | None = None) -> dict[str, list[float]]:
    """{name: [figure per round]}: each round calls every turn once and records the figure it returns.

    The order alternates, forward then backward (``rng`` None), or is a
    fresh random order from ``rng`` each round; so no side is always first.
    """
    figures: dict[str, list[float]] = {name: [] for name in turns}
    names = list(turns)
    for r in range(rounds):
        if rng is None:
            order = names if r % 2 == 0 else names[::-1]
        else:
            order = rng.sample(names, len(names))
        for name in order:
            figures[name].append(turns[name]())
    return figures


def _turn(variant: Variant, seconds: float, cuda: bool) -> tuple[int, float, int, int | None]:
    """One timed turn: the stock the loader prepared while idle is served untimed, then ``seconds`` of batches.

    Returns (images, elapsed seconds, batches, CUDA bytes allocated above the turn's start or None).
    """
    for _ in range(variant.ready + 1):
        variant.step()
    base = 0
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    images, batches, t0 = 0, 0, _clock()
    while True:
        images += variant.step()
        batches += 1
        elapsed = _clock() - t0
        if elapsed >= seconds:
            break
    peak = None
    if cuda:
        torch.cuda.synchronize()
        elapsed = _clock() - t0
        peak = torch.cuda.max_memory_allocated() - base
    return images, elapsed, batches, peak


def _round_order(variants: Sequence[Variant], rng: random.Random, adjacent: Iterable[str]) -> list[Variant]:
    """One round's turns in a random order, with the variants keyed in ``adjacent`` back to back."""
    adjacent = set(adjacent)
    pair = [v for v in variants if v.key in adjacent]
    units = [[v] for v in variants if v.key not in adjacent] + ([pair] if pair else [])
    rng.shuffle(units)
    rng.shuffle(pair)  # in place: the unit holding the pair sees the new order too
    return [v for unit in units for v in unit]


def measure(variants: Sequence[Variant], *, rounds: int, seconds: float, warmup: int, seed: int = 0,
            cuda: bool = False, progress: bool = True, prepare: Callable[[], None] | None = None,
            adjacent: Iterable[str] = ADJACENT) -> list[dict[str, Any]]:
    """Build, warm up and time ``variants`` (``variants.Variant``) in interleaved turns; one result dict each.

    Each variant is built once (torch-side ones first: their workers fork
    before any DALI or numba thread exists) and warmed up by ``warmup``
    batches. Then, in each of ``rounds`` rounds, every variant gets one turn
    in a fresh seeded random order: its first ``ready + 1`` batches come from
    the stock it prefetched while idle and are not timed; then batches are
    timed for ``seconds``. After a turn the benchmark sleeps while that
    loader refills its stock (``REFILL_MARGIN`` times the time its measured
    rate implies, at most ``seconds``), so the next turn starts on an idle
    machine. The variants keyed in ``adjacent`` (gpumix, normalize only and
    the aliased pipeline, whose ratios are mixup's and antialiasing's costs)
    take their turns back to back, in random order, so that their paired
    ratios see the same machine state.
    A variant's images/s is the median over rounds, with min and max.
    ``prepare()``, if given, runs once after the torch-side variants are
    built and before the others (shared one-off costs: kernel compilation).
    """
    order = sorted(variants, key=lambda v: not v.torch_side)
    memory, gpu_memory = {}, {}
    for v in tqdm(order, desc="build + warm-up", unit="loader", disable=not progress):
        if prepare is not None and not v.torch_side:
            prepare()
            prepare = None
        with HostMemory() as mem, GpuMemory(cuda) as gpu_mem:
            v.start()
            for _ in range(warmup):
                v.step()
        memory[v.key], gpu_memory[v.key] = mem.added, gpu_mem.added
    rates: dict[str, list[float]] = {v.key: [] for v in variants}
    stats: dict[str, dict[str, Any]] = {v.key: {"images": 0, "seconds": 0.0, "cuda_peak": None} for v in variants}
    rng = random.Random(seed)
    with tqdm(total=rounds * len(variants), desc="timed turns", unit="turn", disable=not progress) as bar:
        for _ in range(rounds):
            for v in _round_order(variants, rng, adjacent):
                images, elapsed, batches, peak = _turn(v, seconds, cuda)
                rates[v.key].append(images / elapsed)
                s = stats[v.key]
                s["images"] += images
                s["seconds"] += elapsed
                if peak is not None:
                    s["cuda_peak"] = max(s["cuda_peak"] or 0, peak)
                bar.update()
                time.sleep(min(seconds, REFILL_MARGIN * v.ready * elapsed / batches))
    results = []
    for v in variants:
        r = rates[v.key]
        results.append({"key": v.key, "name": v.name, "images_per_s": statistics.median(r),
                        "min_images_per_s": min(r), "max_images_per_s": max(r), "per_round_images_per_s": r,
                        "timed_images": stats[v.key]["images"], "timed_seconds": stats[v.key]["seconds"],
                        "untimed_batches_per_turn": v.ready + 1, "host_memory_added_bytes": memory[v.key],
                        "gpu_memory_added_bytes": gpu_memory[v.key],
                        "cuda_peak_added_bytes": stats[v.key]["cuda_peak"]})
    return results


def paired_overhead(results: Sequence[dict[str, Any]], key: str = "gpumix",
                    base: str = "normalize_only") -> dict[str, Any] | None:
    """``key``'s cost over ``base``, paired round by round: 1 - rate(key) / rate(base); None if either is absent."""
    by_key = {r["key"]: r for r in results}
    if key not in by_key or base not in by_key:
        return None
    per_round = [1 - a / b for a, b in zip(by_key[key]["per_round_images_per_s"],
                                           by_key[base]["per_round_images_per_s"])]
    return {"of": key, "over": base, "median": statistics.median(per_round), "min": min(per_round),
            "max": max(per_round), "per_round": per_round}


def auto_augment_cost(results: Sequence[dict[str, Any]], threads: int,
                      policies: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Per policy: wall ms per image with and without it, paired round by round against plain gpumix.

    ``added_ms`` is ``1000/rate(policy) - 1000/rate(gpumix)`` per round (wall time per image with
    ``threads`` DALI threads); ``added_core_ms`` multiplies it by ``threads``, the CPU time per image
    if every thread is busy. ``policies``: the policy names run (the ``gpumix_<policy>`` rows; other
    ``gpumix_`` rows, such as the aliased resize, are not policies); None takes every such row.
    """
    by_key = {r["key"]: r for r in results}
    base = by_key.get("gpumix")
    wanted = None if policies is None else set(policies)
    out = []
    for r in results:
        if not r["key"].startswith("gpumix_") or base is None:
            continue
        if wanted is not None and r["key"][len("gpumix_"):] not in wanted:
            continue
        added = [1000 / a - 1000 / b for a, b in zip(r["per_round_images_per_s"], base["per_round_images_per_s"])]
        out.append({"key": r["key"], "policy": r["key"][len("gpumix_"):], "threads": threads,
                    "ms_per_image": 1000 / r["images_per_s"], "base_ms_per_image": 1000 / base["images_per_s"],
                    "added_ms": statistics.median(added), "added_ms_min": min(added), "added_ms_max": max(added),
                    "added_core_ms": threads * statistics.median(added), "per_round_added_ms": added})
    return out
