"""Fuzzing gpumix.mix_normalize and gpumix.normalize: a correct result or a clean error, never anything else.

A case draws every argument (shape, dtype, strides and device of the batch;
labels; lam, index and boxes; num_classes, label_smoothing, mean, std, the
output dtype, channels_last, return_clean), with a chosen set of them made
invalid in a chosen way (``INVALID``). The property: with every argument
valid, the outputs match the float64 reference within the dtype's bound and
the batch is unchanged; with any invalid, a ValueError or TypeError naming one
of them is raised. Anything else (another exception, a crash, inf/nan or wrong
values) fails. Hypothesis draws the cases (and shrinks a failure); a seeded
loop makes each kind of invalid value once, so every one is always covered.
Sizes stay tiny: the CPU kernel compiles once per signature.
"""
import math
import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpumix
from gpumix import MixParams
from gpumix.kernels.reference import mix_normalize_reference

OUTPUT_DTYPES = [torch.float32, torch.float16, torch.bfloat16]
LAYOUTS = ["contiguous", "sliced", "permuted", "transposed", "expanded"]
# Every way an argument is made invalid. An error must name the argument (MixParams' errors name lam,
# index or boxes; statistics errors may name mean and std together).
INVALID = {
    "batch": ["channels-2", "channels-4", "int16", "float32", "bool", "meta", "empty", "dims", "sparse", "list"],
    "labels": ["negative", "too-high", "float", "shape", "list", "meta"],
    "num_classes": [1, 0, 3.0, True, "5"],
    "lam": ["nan", "negative", "above-one", "inf", "float64", "shape"],
    "index": ["negative", "too-high", "repeated", "int32"],
    "boxes": ["negative", "inverted", "outside", "int64"],
    "mean": ["nan", "inf", "-inf", "beyond-float32", "meta", "length", "str"],
    "std": ["nan", "inf", "zero", "negative", "tiny", "fp16-overflow"],
    "label_smoothing": [1.0, -0.1, float("nan"), "0.1"],
    "dtype": [torch.float64, torch.int32, "float32", None],
    "channels_last": ["yes", 1],
    "return_clean": [1, None],
}
NAMES = sorted(INVALID)
FUZZ = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class _Draws:
    """Choices from hypothesis (``draw``) or from a seeded ``random.Random``, behind one interface."""

    def __init__(self, draw=None, rng=None):
        self._draw, self._rng = draw, rng

    def integer(self, low, high):
        return self._draw(st.integers(low, high)) if self._draw else self._rng.randint(low, high)

    def real(self, low, high):
        if self._draw:
            return self._draw(st.floats(low, high, allow_nan=False, allow_infinity=False))
        return self._rng.uniform(low, high)

    def pick(self, options):
        return self._draw(st.sampled_from(options)) if self._draw else self._rng.choice(options)


def _layout(x, how):
    """The same values as the contiguous NHWC ``x``, in another memory layout."""
    if how == "sliced":  # every other row and one column more: non-contiguous strides
        n, h, w, c = x.shape
        big = torch.zeros((n, 2 * h, w + 1, c), dtype=x.dtype)
        big[:, ::2, :w] = x
        return big[:, ::2, :w]
    if how == "permuted":  # NCHW storage seen as NHWC
        return x.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)
    if how == "transposed":  # H and W swapped in storage
        return x.transpose(1, 2).contiguous().transpose(1, 2)
    if how == "expanded" and x.shape[0] > 1:  # one sample broadcast over the batch (stride 0)
        return x[:1].expand(x.shape)
    return x


def make_case(d, bad):
    """The keyword arguments of one call; ``bad`` maps argument names to the INVALID kind to apply."""
    n, h, w = d.integer(1, 5), d.integer(1, 5), d.integer(1, 5)
    c = d.pick([1, 3])
    kind = bad.get("batch")
    if kind in ("channels-2", "channels-4"):
        c = int(kind[-1])
    if kind == "empty":
        n = 0
    g = torch.Generator().manual_seed(d.integer(0, 2**31 - 1))
    batch = _layout(torch.randint(0, 256, (n, h, w, c), dtype=torch.uint8, generator=g), d.pick(LAYOUTS))
    if kind in ("int16", "float32", "bool"):
        batch = batch.to(getattr(torch, kind))
    batch = {"meta": lambda b: b.to("meta"), "dims": lambda b: b[0], "sparse": lambda b: b.to_sparse(),
             "list": lambda b: b.tolist()}.get(kind, lambda b: b)(batch)

    num_classes = bad.get("num_classes", d.integer(2, 6))
    k = num_classes if type(num_classes) is int and num_classes >= 2 else 2
    size = max(n, 1)
    labels = torch.randint(0, k, (size,), generator=g).to(d.pick([torch.int64, torch.int32, torch.uint8]))
    kind = bad.get("labels")
    if kind in ("negative", "too-high"):
        labels = labels.to(torch.int64)
        labels[d.integer(0, size - 1)] = -1 if kind == "negative" else k + d.integer(0, 3)
    labels = {"float": lambda y: y.float(), "shape": lambda y: y.view(size, 1), "list": lambda y: y.tolist(),
              "meta": lambda y: y.to("meta")}.get(kind, lambda y: y)(labels)

    lam = torch.rand(size, generator=g)
    lam[d.integer(0, size - 1)] = d.pick([0.0, 1.0, float(lam[0])])
    kind = bad.get("lam")
    if kind in ("nan", "negative", "above-one", "inf"):
        lam[d.integer(0, size - 1)] = {"nan": math.nan, "negative": -0.25, "above-one": 1.5, "inf": math.inf}[kind]
    lam = {"float64": lambda t: t.double(), "shape": lambda t: t.view(1, size)}.get(kind, lambda t: t)(lam)

    index = torch.randperm(size, generator=g)
    kind = bad.get("index")
    if kind in ("negative", "too-high"):
        index[d.integer(0, size - 1)] = -1 if kind == "negative" else size + d.integer(0, 3)
    elif kind == "repeated":
        index = torch.zeros(size + 1, dtype=torch.int64)[:size] if size > 1 else torch.tensor([1])
    elif kind == "int32":
        index = index.to(torch.int32)

    boxes = None
    kind = bad.get("boxes")
    if kind or d.pick([False, True]):
        y = torch.sort(torch.randint(0, h + 1, (size, 2), generator=g), dim=1).values
        x = torch.sort(torch.randint(0, w + 1, (size, 2), generator=g), dim=1).values
        boxes = torch.stack([y[:, 0], x[:, 0], y[:, 1], x[:, 1]], dim=1).to(torch.int32)
    i = d.integer(0, size - 1)
    if kind == "negative":
        boxes[i, 1] = -1
    elif kind == "inverted":
        boxes[i] = torch.tensor([2, 0, 1, 1], dtype=torch.int32)
    elif kind == "outside":
        boxes[i] = torch.tensor([0, 0, h + 1, w], dtype=torch.int32)
    elif kind == "int64":
        boxes = boxes.long()

    mean = [d.real(-50.0, 300.0) for _ in range(c)]
    std = [d.real(1.0, 100.0) for _ in range(c)]
    if "std" not in bad and d.integer(0, 7) == 0:
        std[0] = 1e30  # valid: outputs near zero
    dtype = d.pick(OUTPUT_DTYPES)
    ch = d.integer(0, c - 1)
    kind = bad.get("mean")
    if kind in ("nan", "inf", "-inf", "beyond-float32"):
        mean[ch] = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "beyond-float32": d.pick([1e39, -1e300])}[kind]
    mean = {"meta": lambda m: torch.tensor(m, device="meta"), "length": lambda m: m + [0.0],
            "str": lambda m: "0.5"}.get(kind, lambda m: m)(mean)
    kind = bad.get("std")
    if kind in ("nan", "inf", "zero", "negative", "tiny"):
        std[ch] = {"nan": math.nan, "inf": math.inf, "zero": 0.0, "negative": -1.0, "tiny": 1e-40}[kind]
    elif kind == "fp16-overflow":  # valid for float32 and bfloat16, beyond float16's 65504
        std[ch], dtype = 1e-3, torch.float16
    dtype = bad.get("dtype", dtype)
    return dict(batch=batch, labels=labels, lam=lam, index=index, boxes=boxes, num_classes=num_classes,
                mean=mean, std=std, label_smoothing=bad.get("label_smoothing", d.pick([0.0, 0.1, 0.5])),
                dtype=dtype, channels_last=bad.get("channels_last", d.pick([False, True])),
                return_clean=bad.get("return_clean", d.pick([False, True])))


def _run(args, check):
    """Call the operator on ``args`` and check every output against the float64 reference."""
    batch = args["batch"]
    before = batch.clone() if isinstance(batch, torch.Tensor) and batch.layout == torch.strided and \
        batch.device.type == "cpu" else None
    params = MixParams(args["lam"], args["index"], args["boxes"])
    out = gpumix.mix_normalize(batch, args["labels"], params, mean=args["mean"], std=args["std"],
                               num_classes=args["num_classes"], label_smoothing=args["label_smoothing"],
                               dtype=args["dtype"], channels_last=args["channels_last"],
                               return_clean=args["return_clean"])
    ref = mix_normalize_reference(batch, args["labels"], args["lam"], args["index"], args["boxes"], args["mean"],
                                  args["std"], args["num_classes"], args["label_smoothing"])
    clean, ref_clean = (out[2], ref[2]) if args["return_clean"] else (None, None)
    check(out[0], out[1], clean, ref[0], ref[1], ref_clean, args["dtype"])
    layout = torch.channels_last if args["channels_last"] else torch.contiguous_format
    assert out[0].is_contiguous(memory_format=layout)
    assert torch.equal(batch, before), "the batch was modified"


def _check_case(args, bad, check):
    if not bad:
        _run(args, check)
        return
    with pytest.raises((ValueError, TypeError)) as info:
        _run(args, check)
    names = set(bad) | ({"mean", "std"} if bad.keys() & {"mean", "std"} else set())
    message = str(info.value)
    assert any(name in message for name in names), f"invalid {bad}, but the error says: {message}"


@st.composite
def _invalid(draw):
    names = draw(st.lists(st.sampled_from(NAMES), max_size=2, unique=True))
    return {name: draw(st.sampled_from(INVALID[name])) for name in names}


@FUZZ
@given(data=st.data(), bad=_invalid())
def test_mix_normalize_is_right_or_refuses_cleanly(assert_matches_reference, data, bad):
    _check_case(make_case(_Draws(draw=data.draw), bad), bad, assert_matches_reference)


@FUZZ
@given(data=st.data())
def test_valid_inputs_of_every_layout_match_the_reference(assert_matches_reference, data):
    _check_case(make_case(_Draws(draw=data.draw), {}), {}, assert_matches_reference)


@pytest.mark.parametrize("name", NAMES)
def test_every_invalid_kind_is_refused_by_name(assert_matches_reference, name):
    """The seeded loop: each kind of invalid value of ``name``, alone and beside another invalid argument."""
    rng = random.Random(name)
    for kind in INVALID[name]:
        for other in (None, rng.choice([n for n in NAMES if n != name])):
            bad = {name: kind}
            if other is not None:
                bad[other] = rng.choice(INVALID[other])
            _check_case(make_case(_Draws(rng=rng), bad), bad, assert_matches_reference)


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(n=st.integers(1, 4), h=st.integers(1, 5), w=st.integers(1, 5), c=st.sampled_from([1, 3]),
       layout=st.sampled_from(LAYOUTS), dtype=st.sampled_from(OUTPUT_DTYPES), channels_last=st.booleans(),
       seed=st.integers(0, 2**31 - 1), std_scale=st.sampled_from([1e-2, 1.0, 1e30]))
def test_normalize_matches_the_reference_or_refuses_overflow(n, h, w, c, layout, dtype, channels_last, seed,
                                                             std_scale):
    g = torch.Generator().manual_seed(seed)
    batch = _layout(torch.randint(0, 256, (n, h, w, c), dtype=torch.uint8, generator=g), layout)
    mean = (torch.rand(c, generator=g) * 255).tolist()
    std = ((torch.rand(c, generator=g) * 60 + 1) * std_scale).tolist()
    reach = max(max(abs(m), abs(255 - m)) / s for m, s in zip(mean, std))
    if reach > torch.finfo(dtype).max:  # only float16 with std_scale 1e-2
        with pytest.raises(ValueError, match=r"mean\[\d\] = .* and std\[\d\] = .* map pixel values 0-255 to "
                                             r"magnitudes up to .*, beyond the largest torch.float16"):
            gpumix.normalize(batch, mean=mean, std=std, dtype=dtype, channels_last=channels_last)
        return
    images = gpumix.normalize(batch, mean=mean, std=std, dtype=dtype, channels_last=channels_last)
    want = (batch.permute(0, 3, 1, 2).double() - torch.tensor(mean, dtype=torch.float64).view(1, c, 1, 1)) \
        / torch.tensor(std, dtype=torch.float64).view(1, c, 1, 1)
    tol = {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 1e-2}[dtype]
    assert images.dtype == dtype and torch.isfinite(images.float()).all()
    torch.testing.assert_close(images.double(), want, rtol=tol, atol=tol * max(1.0, float(want.abs().max())))


# --- the refusals the fuzzing forced, one message each ----------------------------------------------------

_BATCH = torch.zeros((2, 4, 4, 3), dtype=torch.uint8)
_STATS = dict(mean=[120.0, 110.0, 100.0], std=[60.0, 55.0, 50.0])


@pytest.mark.parametrize("call, error, message", [
    (lambda: gpumix.normalize(_BATCH.to("meta"), **_STATS), ValueError,
     r"batch must be on the CPU or a CUDA device, got meta"),
    (lambda: gpumix.normalize(_BATCH.to_sparse(), **_STATS), TypeError,
     r"batch must be a dense \(strided\) tensor, got layout torch.sparse_coo"),
    (lambda: gpumix.normalize(_BATCH, mean=torch.zeros(3, device="meta"), std=[1.0] * 3), TypeError,
     r"mean must hold values, got a tensor on the meta device"),
    (lambda: MixParams(torch.ones(2, device="meta"), torch.arange(2, device="meta")), ValueError,
     r"lam, index and boxes must hold values, got tensors on the meta device"),
    (lambda: gpumix.normalize(_BATCH, mean=[0.0] * 3, std=[1e-40, 1.0, 1.0]), ValueError,
     r"mean\[0\] = 0.0 and std\[0\] = 1e-40 map pixel values 0-255 to magnitudes up to 2.55e\+42, beyond the "
     r"largest torch.float32 \(3.403e\+38\)"),
    (lambda: gpumix.normalize(_BATCH, mean=[0.0] * 3, std=[1.0, 1e-3, 1.0], dtype=torch.float16), ValueError,
     r"mean\[1\] = 0.0 and std\[1\] = 0.001 map pixel values 0-255 to magnitudes up to 2.55e\+05, beyond the "
     r"largest torch.float16 \(6.55e\+04\)"),
    (lambda: gpumix.normalize(_BATCH, mean=[1e300, 0.0, 0.0], std=[1e300, 1.0, 1.0]), ValueError,
     r"mean\[0\] must be within float32's range \(\+-3.403e\+38\), got 1e\+300"),
], ids=["meta-batch", "sparse-batch", "meta-mean", "meta-params", "std-tiny", "fp16-overflow", "mean-huge"])
def test_refusals(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_the_same_statistics_fit_a_wider_dtype():
    """std = 1e-3 is refused for float16 only: bfloat16 and float32 hold 255 / 1e-3."""
    batch = torch.full((1, 2, 2, 1), 255, dtype=torch.uint8)
    for dtype in (torch.float32, torch.bfloat16):
        out = gpumix.normalize(batch, mean=[0.0], std=[1e-3], dtype=dtype)
        assert math.isclose(float(out[0, 0, 0, 0]), 255000.0, rel_tol=1e-2)
