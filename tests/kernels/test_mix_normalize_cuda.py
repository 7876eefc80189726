"""The exact CUDA kernel source: every specialization under the numba simulator, and on a real GPU when there is one."""
import pytest
import torch
from numba import config as numba_config

from gpumix.kernels import mix_normalize_cuda
from gpumix.kernels.mix_normalize_cuda import Variant, select, variants
from gpumix.kernels.reference import mix_normalize_reference

simulator = pytest.mark.skipif(not numba_config.ENABLE_CUDASIM, reason="needs NUMBA_ENABLE_CUDASIM=1")
real_cuda = pytest.mark.skipif(numba_config.ENABLE_CUDASIM or not torch.cuda.is_available(),
                               reason="needs a CUDA GPU and GPUMIX_TEST_REAL_CUDA=1")
TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _case_for(variant, make_case, seed):
    # 16 rows x 24 (word path) or 23 (byte path) columns: with the simulator's 32-thread blocks each thread
    # takes several grid-stride steps and wraps rows; 5 samples, an odd batch.
    width = 24 if variant.wide else 23
    return make_case(5, 16, width, variant.channels, 7, seed=seed)


@simulator
@pytest.mark.parametrize("variant", variants(wide=True) + variants(wide=False), ids=lambda v: v.name)
def test_every_simulated_specialization_matches_reference(make_case, launch_poisoned, assert_matches_reference,
                                                          variant):
    seed = (variants(True) + variants(False)).index(variant)
    batch, labels, params, mean, std = _case_for(variant, make_case, seed)
    dtype = TORCH_DTYPES[variant.dtype]
    out = torch.empty((5, variant.channels, 16, batch.shape[2]), dtype=dtype)
    chosen = select(batch, out.view(torch.int16) if variant.dtype != "float32" else out, variant.dtype,
                    variant.channels_last, variant.clean)  # what launch() picks: only the layout comes from out
    assert chosen == Variant(variant.dtype, variant.channels_last, variant.clean, variant.channels, variant.wide,
                             hardware_cvt=False)
    before = batch.clone()
    got = launch_poisoned(mix_normalize_cuda, batch, labels, params, mean, std, 7, 0.1, dtype,
                          variant.channels_last, variant.clean)
    ref = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes, mean, std, 7, 0.1)
    assert_matches_reference(*got, *ref[:2], ref[2] if variant.clean else None, dtype)
    assert torch.equal(batch, before)


@simulator
def test_simulated_kernel_agrees_with_cpu_twin(make_case, launch_poisoned):
    from gpumix.kernels import mix_normalize_cpu
    for width in (32, 33):  # word and byte paths
        batch, labels, params, mean, std = make_case(3, 9, width, 3, 5, seed=21)
        gpu = launch_poisoned(mix_normalize_cuda, batch, labels, params, mean, std, 5, 0.0, torch.bfloat16, False,
                              False)
        cpu = launch_poisoned(mix_normalize_cpu, batch, labels, params, mean, std, 5, 0.0, torch.bfloat16, False,
                              False)
        # the simulator does not fuse multiply-adds, so the two agree to the bit
        assert torch.equal(gpu[0].view(torch.int16), cpu[0].view(torch.int16))
        assert torch.equal(gpu[1], cpu[1])


@simulator
def test_unaligned_batch_takes_the_byte_path_and_stays_correct(make_case, assert_matches_reference):
    import gpumix
    batch, labels, params, mean, std = make_case(3, 8, 16, 3, 4, seed=3)
    storage = torch.empty(batch.numel() + 1, dtype=torch.uint8)
    shifted = storage[1:].view(batch.shape)  # 1 byte off the 4-byte alignment of the word path
    shifted.copy_(batch)
    out = torch.empty((3, 3, 8, 16))
    assert not select(shifted, out, "float32", False, False).wide
    assert select(batch, out, "float32", False, False).wide
    images, targets = gpumix.mix_normalize(shifted, labels, params, mean=mean, std=std, num_classes=4)
    ref = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes, mean, std, 4)
    assert_matches_reference(images, targets, None, ref[0], ref[1], None, torch.float32)


def test_select_chooses_path_rounding_and_offset_width():
    batch = torch.zeros((2, 8, 12, 3), dtype=torch.uint8)
    out = torch.empty((2, 3, 8, 12))
    assert select(batch, out, "float32", False, False, (9, 0)) == Variant("float32", False, False, 3, True, True)
    assert not select(batch, out, "bfloat16", True, True, (7, 5)).hardware_cvt  # cvt.rn.bf16x2 needs sm_80
    assert not select(batch[:, :, :10], out, "float32", False, False).wide  # width 10 is not a multiple of 4
    big = torch.zeros((1, 1, 1, 1), dtype=torch.uint8).expand(2**31 // 3 + 1, 1, 1, 3)
    assert select(big, out, "float32", False, False).index64


def test_variant_refuses_unknown_settings():
    with pytest.raises(ValueError, match="dtype must be one of float32, float16, bfloat16, got 'int8'"):
        Variant(dtype="int8")
    with pytest.raises(ValueError, match="channels must be 1 or 3, got 4"):
        Variant(channels=4)


def test_grid_steps_cover_every_group_once():
    # Walk the word and byte paths' stepping as the kernel does: every (row, column) group is visited once.
    for variant, width in ((Variant(), 24), (Variant(wide=False), 23)):
        (blocks_x, _), (step_h, step_w) = mix_normalize_cuda.grid(variant, 2, 16, width, block=8)
        row_groups = width // 4 if variant.wide else -(-width // 4)
        unit = 4 if variant.wide else 1  # the word path counts columns in pixels
        seen = []
        for first in range(blocks_x * 8):
            h, w = divmod(first * unit, row_groups * unit)
            g = first
            while g < 16 * row_groups:
                seen.append((h, w // unit))
                g += blocks_x * 8
                h, w = h + step_h, w + step_w
                if w >= row_groups * unit:
                    h, w = h + 1, w - row_groups * unit
        assert sorted(seen) == [(h, q) for h in range(16) for q in range(row_groups)]


@real_cuda
@pytest.mark.parametrize("variant", variants(wide=True) + variants(wide=False), ids=lambda v: v.name)
def test_real_kernel_matches_reference(make_case, assert_matches_reference, variant):
    import gpumix
    width = 228 if variant.wide else 97
    batch, labels, params, mean, std = make_case(67, 61, width, variant.channels, 1000, seed=5)
    dtype = TORCH_DTYPES[variant.dtype]
    images, targets, clean = gpumix.mix_normalize(batch.cuda(), labels, params, mean=mean, std=std,
                                                  num_classes=1000, label_smoothing=0.1, dtype=dtype,
                                                  channels_last=variant.channels_last, return_clean=True)
    ref = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes, mean, std, 1000, 0.1)
    assert_matches_reference(images.cpu(), targets.cpu(), clean.cpu(), *ref, dtype)


@real_cuda
def test_real_kernel_with_an_odd_batch_and_an_unaligned_input(make_case, assert_matches_reference):
    import gpumix
    batch, labels, params, mean, std = make_case(3, 16, 32, 3, 10, seed=8)
    storage = torch.empty(batch.numel() + 1, dtype=torch.uint8, device="cuda")
    shifted = storage[1:].view(batch.shape)
    shifted.copy_(batch.cuda())
    for source in (batch.cuda(), shifted):
        images, targets = gpumix.mix_normalize(source, labels, params, mean=mean, std=std, num_classes=10,
                                               dtype=torch.bfloat16, channels_last=True)
        ref = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes, mean, std, 10)
        assert_matches_reference(images.cpu(), targets.cpu(), None, ref[0], ref[1], None, torch.bfloat16)


@pytest.mark.parametrize("erase", ["const", "rand", "pixel"])
@pytest.mark.parametrize("width", [24, 23], ids=["word", "byte"])
def test_erasing_kernel_matches_reference_and_the_cpu_twin(monkeypatch, make_case,
                                                                       assert_matches_reference, erase, width):
    """The CUDA source (simulated, or real with GPUMIX_TEST_REAL_CUDA=1) and the CPU twin, erasing before mixing."""
    if not numba_config.ENABLE_CUDASIM and not torch.cuda.is_available():
        pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 or a GPU")
    import gpumix
    import gpumix.ops as ops
    from gpumix import RandomErasing
    from gpumix.kernels import mix_normalize_cpu
    batch, labels, params, mean, std = make_case(5, 16, width, 3, 7, seed=width)
    erasing = RandomErasing(prob=0.9, mode=erase, max_count=2, seed=1).sample(5, (16, width), 3, epoch=0, step=0)
    got = {}
    for name, module in (("cuda", mix_normalize_cuda), ("cpu", mix_normalize_cpu)):
        monkeypatch.setattr(ops, "kernel_module", lambda b, m=module: m)
        source = batch.cuda() if name == "cuda" and not numba_config.ENABLE_CUDASIM else batch
        got[name] = [t.cpu() for t in gpumix.mix_normalize(source, labels, params, mean=mean, std=std,
                                                             num_classes=7, dtype=torch.bfloat16, channels_last=True,
                                                             return_clean=True, erasing=erasing)]
    ref = mix_normalize_reference(batch, labels, params.lam, params.index, params.boxes, mean, std, 7,
                                  erasing=erasing)
    assert_matches_reference(*got["cuda"], *ref, torch.bfloat16)
    assert_matches_reference(*got["cpu"], *ref, torch.bfloat16)
    # The clean batch is erased and unmixed: the erased values (the counter-based noise included) are the
    # same bits in both. Mixed values may differ in the last bit, as everywhere between the two: the CPU
    # twin's compiled loops may contract or reorder the float32 blend where the kernel does not.
    assert torch.equal(got["cuda"][2].view(torch.int16), got["cpu"][2].view(torch.int16))
