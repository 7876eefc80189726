"""The CPU twin against the float64 reference, on fresh random inputs and poisoned outputs."""
import types

import pytest
import torch

from gpumix.kernels import mix_normalize_cpu
from gpumix.kernels.reference import mix_normalize_reference

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("channels", [1, 3])
def test_cpu_twin_matches_reference(make_case, launch_poisoned, assert_matches_reference,
                                    dtype, channels_last, channels):
    seed = DTYPES.index(dtype) * 4 + channels_last * 2 + channels
    batch, labels, params, mean, std = make_case(7, 9, 13, channels, 11, seed=seed)
    before = batch.clone()
    got = launch_poisoned(mix_normalize_cpu, batch, labels, params, mean, std, 11, 0.1, dtype, channels_last, True)
    ref = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes, mean, std, 11, 0.1)
    assert_matches_reference(*got, *ref, dtype)
    assert torch.equal(batch, before)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert got[0].is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_outputs_are_the_fp32_outputs_rounded(make_case, launch_poisoned, dtype):
    batch, labels, params, mean, std = make_case(5, 16, 24, 3, 10, seed=3)
    full = launch_poisoned(mix_normalize_cpu, batch, labels, params, mean, std, 10, 0.0, torch.float32, False, False)
    half = launch_poisoned(mix_normalize_cpu, batch, labels, params, mean, std, 10, 0.0, dtype, False, False)
    assert torch.equal(half[0].view(torch.int16), full[0].to(dtype).view(torch.int16))


def test_large_batch_without_boxes_matches_reference(make_case, launch_poisoned, assert_matches_reference):
    batch, labels, params, mean, std = make_case(33, 32, 40, 3, 100, seed=9, boxes=False)
    got = launch_poisoned(mix_normalize_cpu, batch, labels, params, mean, std, 100, 0.0, torch.float32, False, False)
    ref = mix_normalize_reference(batch, labels, params.lam, params.index, None, mean, std, 100)
    assert_matches_reference(got[0], got[1], None, ref[0], ref[1], None, torch.float32)


@pytest.mark.parametrize("index", [
    [3, 0, 1, 2, 6, 4, 5, 7, 9, 8],  # cycles of 4, 3, 1 and 2 samples
    [1, 0, 3, 2, 5, 4, 7, 6, 9, 8],  # pairs
    list(range(10)),  # everyone their own partner
    [0, 0, 0, 9, 3, 3, 2, 2, 8, 8],  # no permutation: partners shared, samples nobody's partner
])
def test_every_sample_is_written_whatever_its_partners(make_case, launch_poisoned, assert_matches_reference, index):
    """The twin writes the samples along the cycles of ``index`` (each one's partner next): every sample once,
    whatever ``index`` is. The outputs start as NaN, so a sample skipped or written twice with a wrong row fails."""
    batch, labels, params, mean, std = make_case(10, 5, 11, 3, 7, seed=77)
    params = types.SimpleNamespace(lam=params.lam, index=torch.tensor(index), boxes=params.boxes)
    got = launch_poisoned(mix_normalize_cpu, batch, labels, params, mean, std, 7, 0.1, torch.float32, False, True)
    ref = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes, mean, std, 7, 0.1)
    assert_matches_reference(*got, *ref, torch.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mode", ["const", "rand", "pixel"])
@pytest.mark.parametrize("max_count", [1, 3])
def test_cpu_twin_erases_every_layout_like_the_reference(make_case, assert_matches_reference, dtype, channels_last,
                                                          channels, mode, max_count):
    """Erasing through the twin's pieces: every layout, CutMix and mixup rows, up to 3 overlapping boxes.

    37 columns (no whole vector of 8 pixels), so pieces end anywhere; the clean output is checked too. With
    one box per sample, most crossed rows take the path without the cut (``_one_box``): one box of the
    sample or its partner crosses them, and no CutMix box.
    """
    import gpumix

    seed = DTYPES.index(dtype) * 4 + channels_last * 2 + channels + (40 if max_count == 1 else 0)
    batch, labels, _, mean, std = make_case(9, 11, 37, channels, 9, seed=seed)
    params = gpumix.Mixup(num_classes=9, alpha=0.4, cutmix_alpha=1.0, mode="elem", seed=seed).sample(
        9, (11, 37), epoch=0, step=0)
    erasing = gpumix.RandomErasing(prob=0.9, mode=mode, max_count=max_count, area=(0.05, 0.5), seed=seed).sample(
        9, (11, 37), channels, epoch=0, step=0)
    if max_count == 1:
        one_box, cutmix_one_box = _one_box_rows(params, erasing, 11)
        assert one_box > 11 and cutmix_one_box > 0  # rows of mixup and of CutMix samples take that path
    else:
        assert (erasing.boxes[..., 2] > erasing.boxes[..., 0]).sum() > 9  # several samples carry several boxes
    got = gpumix.mix_normalize(batch, labels, params, mean=mean, std=std, num_classes=9, dtype=dtype,
                               channels_last=channels_last, return_clean=True, erasing=erasing)
    ref = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes, mean, std, 9,
                                  erasing=erasing)
    assert_matches_reference(*got, *ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mode", ["const", "pixel"])
def test_rows_without_the_cut_are_the_cut_rows_bit_for_bit(make_case, dtype, channels_last, channels, mode):
    """The path without the cut (``_one_box``) writes the bits the cut writes: the same boxes with an empty
    second box per sample take the cut on every crossed row (it needs one box per sample)."""
    import gpumix

    seed = DTYPES.index(dtype) * 4 + channels_last * 2 + channels + 40
    batch, labels, _, mean, std = make_case(9, 11, 37, channels, 9, seed=seed)
    params = gpumix.Mixup(num_classes=9, alpha=0.4, cutmix_alpha=1.0, mode="elem", seed=seed).sample(
        9, (11, 37), epoch=0, step=0)
    one = gpumix.RandomErasing(prob=0.9, mode=mode, max_count=1, area=(0.05, 0.5), seed=seed).sample(
        9, (11, 37), channels, epoch=0, step=0)
    two = gpumix.ErasingParams(torch.cat([one.boxes, torch.zeros_like(one.boxes)], 1),
                               torch.cat([one.colors, torch.zeros_like(one.colors)], 1), one.keys, noise=one.noise)
    assert _one_box_rows(params, one, 11)[0] > 11
    got = [gpumix.mix_normalize(batch, labels, params, mean=mean, std=std, num_classes=9, dtype=dtype,
                                channels_last=channels_last, erasing=e)[0] for e in (one, two)]
    bits = torch.int32 if dtype == torch.float32 else torch.int16
    assert torch.equal(got[0].view(bits), got[1].view(bits))


def _one_box_rows(params, erasing, height):
    # (rows crossed by exactly one box of the sample and its partner and by no CutMix box, those of them in
    # CutMix samples): with one box per sample, the rows the twin writes without the cut
    def crosses(s, h):
        y0, x0, y1, x1 = erasing.boxes[s, 0].tolist()
        return y0 <= h < y1 and x0 < x1

    rows = cutmix = 0
    for b in range(len(params.index)):
        y0, x0, y1, x1 = params.boxes[b].tolist()
        for h in range(height):
            if x0 < x1 and y0 <= h < y1:
                continue
            if crosses(b, h) != crosses(int(params.index[b]), h):
                rows += 1
                cutmix += bool(x0 < x1 and y0 < y1)
    return rows, cutmix


def test_cpu_twin_indexes_within_its_arrays():
    """The erasing test above on the twin's Python source (NUMBA_DISABLE_JIT=1): numpy raises on any index
    out of range, which compiled numba code would silently read or write."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-W", "ignore",
                           __file__, "-k", "erases_every_layout and (pixel or rand)"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "48 passed" in done.stdout


@pytest.mark.parametrize("channels_last", [False, True])
def test_noise_runs_that_wrap_around_the_table_match_the_reference(make_case, assert_matches_reference,
                                                                    channels_last):
    """Rows whose run of the noise table starts in its last 3 * W values (3 of them at its very last 3): the
    run wraps to the table's start, through the padded table (channels_last) or the planar one (NCHW)."""
    import gpumix
    from gpumix.kernels import noise

    n, height, width = 6, 2, 37
    # row 0's start is hash32(key) & (NOISE_SIZE - 1): pick keys that land at the table's end
    keys = torch.arange(1 << 22, dtype=torch.int64)
    starts = noise.hash32(keys) & (noise.NOISE_SIZE - 1)
    picked = [int(keys[starts == noise.NOISE_SIZE - k][0]) for k in (1, 2, 3)]
    picked += [int(k) for k in keys[(starts >= noise.NOISE_SIZE - 3 * width) & (starts < noise.NOISE_SIZE - 3)][:3]]
    batch, labels, params, mean, std = make_case(n, height, width, 3, 5, seed=3, boxes=False)
    boxes = torch.tensor([[[0, 0, height, width]]] * n, dtype=torch.int32)  # every pixel erased
    erasing = gpumix.ErasingParams(boxes, torch.zeros(n, 1, 3), torch.tensor(picked), noise=True)
    got = gpumix.mix_normalize(batch, labels, params, mean=mean, std=std, num_classes=5,
                               channels_last=channels_last, return_clean=True, erasing=erasing)
    ref = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes, mean, std, 5,
                                  erasing=erasing)
    assert_matches_reference(*got, *ref, torch.float32)
