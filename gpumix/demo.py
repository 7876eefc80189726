"""``gpumix-demo``: the fused operator on an embedded synthetic batch, checked and timed.

It builds a batch of smooth synthetic images (no download), draws mixup and
CutMix parameters, runs ``gpumix.mix_normalize`` on the GPU when one is usable
(else on the CPU), checks the result against the float64 reference, and times
it against the unfused torch chain in the same process.

    gpumix-demo [--batch-size 64] [--size 224] [--device auto|gpu|cpu] [--save grid.png]
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

import gpumix
from gpumix.datasets import NUM_CLASSES, STATS
from gpumix.kernels.reference import mix_normalize_reference, unfused_chain

__all__ = ["main", "synthetic_batch"]

MEAN, STD = STATS["imagenet"].mean, STATS["imagenet"].std


def synthetic_batch(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, size, size, 3) smooth images: colour gradients plus a bright disc each, and labels (n,)."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, size)
    yy, xx = ramp.view(size, 1), ramp.view(1, size)
    colours = torch.rand(n, 3, 3, generator=g)
    centre = torch.rand(n, 2, generator=g)
    img = (colours[:, 0].view(n, 1, 1, 3) * yy.view(1, size, 1, 1) + colours[:, 1].view(n, 1, 1, 3)
           * xx.view(1, 1, size, 1))
    disc = ((yy - centre[:, 0].view(n, 1, 1)) ** 2 + (xx - centre[:, 1].view(n, 1, 1)) ** 2) < 0.04
    img = torch.where(disc.unsqueeze(-1), colours[:, 2].view(n, 1, 1, 3), img * 0.5)
    return (img * 255).round().to(torch.uint8), torch.randint(0, 1000, (n,), generator=g)


def _median_ms(fn: Callable[[], Any], device: torch.device, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo: check and time the fused operator on a synthetic batch; 0 on success, 2 for bad flags."""
    p = argparse.ArgumentParser(prog="gpumix-demo", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--device", choices=("auto", "gpu", "cpu"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", help="write a PNG grid of the mixed images here")
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.size < 1:
        p.error(f"--batch-size and --size must be >= 1, got {args.batch_size} and {args.size}")
    if args.device == "gpu" and not torch.cuda.is_available():
        p.error("--device gpu: torch.cuda.is_available() is False on this machine")
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")

    batch, labels = synthetic_batch(args.batch_size, args.size, args.seed)
    batch = batch.to(device)
    print(f"gpumix {gpumix.__version__} on {device}: batch {tuple(batch.shape)} uint8 NHWC")
    recipes = {
        "mixup (alpha 0.2, batch mode)": gpumix.Mixup(num_classes=NUM_CLASSES["imagenet"], alpha=0.2, seed=args.seed),
        "mixup+CutMix (elem mode, eps 0.1)": gpumix.Mixup(num_classes=NUM_CLASSES["imagenet"], alpha=0.8,
                                                          cutmix_alpha=1.0, mode=gpumix.MixMode.ELEM,
                                                          label_smoothing=0.1, seed=args.seed),
    }
    for name, mix in recipes.items():
        params = mix.sample(args.batch_size, (args.size, args.size), epoch=0, step=0)
        common: dict[str, Any] = dict(mean=MEAN, std=STD, num_classes=NUM_CLASSES["imagenet"],
                                      label_smoothing=mix.label_smoothing)
        images, targets = gpumix.mix_normalize(batch, labels, params, **common)
        ref_images, ref_targets, _ = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes,
                                                             MEAN, STD, NUM_CLASSES["imagenet"], mix.label_smoothing)
        err = float((images.double() - ref_images).abs().max())
        fused = _median_ms(lambda: gpumix.mix_normalize(batch, labels, params, **common), device)
        unfused = _median_ms(lambda: unfused_chain(batch, labels, params, **common), device)
        cut = 0 if params.boxes is None else int(((params.boxes[:, 2] > params.boxes[:, 0])
                                                  & (params.boxes[:, 3] > params.boxes[:, 1])).sum())
        print(f"\n{name}")
        print(f"  images {tuple(images.shape)} {images.dtype}, targets {tuple(targets.shape)}; "
              f"lam in [{params.lam.min():.3f}, {params.lam.max():.3f}], {cut} CutMix samples")
        print(f"  max |fused - float64 reference| = {err:.2e}; "
              f"target rows sum to 1 within {float((targets.sum(1) - 1).abs().max()):.1e}")
        print(f"  fused {fused:.1f} ms vs unfused torch chain {unfused:.1f} ms: {unfused / fused:.1f}x "
              f"(median of 5, this process)")
        if args.save and name.startswith("mixup+CutMix"):
            from torchvision.utils import save_image
            shown = images[:16].float().cpu() * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
            save_image(shown / 255, args.save, nrow=4)
            print(f"  wrote {args.save}")
    print("\nFor the full side-by-side measurement (the operator and whole loaders): gpumix-bench")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
