"""MixupIterator on the CPU over tiny datasets made on the fly: coverage, mixing, resume, buffers, errors."""
import collections

import numpy as np
import pytest
import torch
from nvidia.dali import fn, pipeline_def, types

from gpumix import LastBatch, MixedBatch, Mixup, MixupIterator
from gpumix.datasets import STATS
from gpumix.kernels.reference import mix_normalize_reference
from gpumix.pipelines import cifar_train, imagenet_train, imagenet_val

MEAN, STD = list(STATS["imagenet"].mean), list(STATS["imagenet"].std)
N = 15  # samples in the unique-label file list: label i is sample i


def _train(datasets, *, batch_size=4, shard_id=0, num_shards=1, seed=5, checkpoint=None, data="unique_list"):
    return imagenet_train(datasets[data], batch_size=batch_size, crop=16, device="cpu", num_threads=1,
                          shard_id=shard_id, num_shards=num_shards, seed=seed, checkpoint=checkpoint)


def _epoch(loader):
    return [tuple(t.clone() for t in batch) for batch in loader]


def _shard_sizes(total, num_shards):
    return [total * (s + 1) // num_shards - total * s // num_shards for s in range(num_shards)]


@pytest.mark.parametrize("num_shards", [1, 2, 3])
@pytest.mark.parametrize("policy", ["partial", "drop", "fill"])
def test_every_sample_once_per_epoch_for_each_policy(datasets, num_shards, policy):
    per_epoch = [collections.Counter() for _ in range(2)]
    lengths = []
    for shard in range(num_shards):
        loader = MixupIterator(_train(datasets, shard_id=shard, num_shards=num_shards), None, mean=MEAN, std=STD,
                               last_batch_policy=policy)
        lengths.append(len(loader))
        for e in range(2):
            batches = _epoch(loader)
            assert len(batches) == len(loader), f"shard {shard} epoch {e}"
            for images, labels in batches:
                per_epoch[e].update(labels.tolist())
    sizes = _shard_sizes(N, num_shards)
    for e, seen in enumerate(per_epoch):
        if policy == "partial":
            assert seen == collections.Counter(range(N)), f"epoch {e}"
        elif policy == "drop":  # DALI: every shard yields the full batches of N // S samples, nothing repeats
            assert max(seen.values()) == 1 and sum(seen.values()) == num_shards * (N // num_shards // 4 * 4)
        else:  # full batches, completed with copies of the shard's last sample
            assert set(seen) == set(range(N)) and sum(seen.values()) == sum(lengths) * 4
    expected_len = {"partial": [-(-s // 4) for s in sizes], "drop": [N // num_shards // 4] * num_shards,
                    "fill": [-(-max(sizes) // 4)] * num_shards}[policy]
    assert lengths == expected_len


def test_targets_sum_to_one_and_two_entries_per_mixed_row(datasets):
    mixup = Mixup(num_classes=N, alpha=1.0, mode="elem", seed=3)
    loader = MixupIterator(_train(datasets), mixup, mean=MEAN, std=STD, return_clean=True)
    for epoch in range(2):
        for step, batch in enumerate(loader):
            assert isinstance(batch, MixedBatch)
            n = batch.images.shape[0]
            torch.testing.assert_close(batch.targets.sum(1), torch.ones(n), rtol=0, atol=1e-6)
            expected = mixup.sample(n, (16, 16), epoch=epoch, step=step)
            assert torch.equal(batch.lam, expected.lam) and torch.equal(batch.index, expected.index)
            for i in range(n):
                row, j = batch.targets[i], int(batch.index[i])
                nonzero = set(row.nonzero().flatten().tolist())
                if j == i or batch.lam[i] == 1:
                    assert nonzero == {int(batch.labels[i])}
                else:
                    assert nonzero == {int(batch.labels[i]), int(batch.labels[j])}
                    assert float(row[batch.labels[i]]) == pytest.approx(float(batch.lam[i]), abs=1e-6)


def test_partial_last_batch_is_mixed_at_its_odd_size(datasets):
    mixup = Mixup(num_classes=N, alpha=0.4, cutmix_alpha=1.0, mode="pair", seed=1)
    loader = MixupIterator(_train(datasets), mixup, mean=MEAN, std=STD, return_clean=True)
    batches = _epoch(loader)
    last = MixedBatch(*batches[-1])
    assert last.images.shape[0] == 3  # 15 = 3 * 4 + 3
    params = mixup.sample(3, (16, 16), epoch=0, step=3)
    ref_images, ref_targets, _ = mix_normalize_reference(_uint8_from_clean(last.clean), last.labels, params.lam,
                                                         params.index, params.boxes, MEAN, STD, N)
    torch.testing.assert_close(last.images.double(), ref_images, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(last.targets.double(), ref_targets, rtol=0, atol=1e-6)


def _uint8_from_clean(clean):
    """The uint8 NHWC batch behind a float32 clean batch (exact: clean = (x - mean) / std)."""
    x = clean.double() * torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    x = x + torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


@pytest.mark.parametrize("dtype,channels_last", [(torch.float32, False), (torch.bfloat16, True)])
def test_without_mixup_output_is_the_normalized_pipeline_output(datasets, dtype, channels_last):
    loader = MixupIterator(_train(datasets, seed=9), None, mean=MEAN, std=STD, dtype=dtype,
                           channels_last=channels_last)
    pipe = _train(datasets, seed=9)
    pipe.build()
    for images, labels in loader:
        raw, y = pipe.run()
        raw = torch.from_numpy(np.stack([np.array(raw[i]) for i in range(len(raw))]))
        y = torch.from_numpy(np.array(y.as_tensor()).reshape(-1).astype(np.int64))
        n = images.shape[0]
        ref = (raw[:n].permute(0, 3, 1, 2).double() - torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)) \
            / torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
        assert images.dtype == dtype and images.is_contiguous(
            memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        tol = 1e-6 if dtype == torch.float32 else 1e-2
        torch.testing.assert_close(images.double(), ref, rtol=tol, atol=tol * 3)
        assert labels.dtype == torch.int64 and torch.equal(labels, y[:n])


def _run(loader, steps):
    out = []
    while len(out) < steps:
        for batch in loader:
            out.append(tuple(t.clone() for t in batch))
            if len(out) == steps:
                break
    return out


@pytest.mark.parametrize("data", ["unique_list", "cifar10-binary"])
@pytest.mark.parametrize("stop_after", [6, 8])  # mid-epoch 2, and at the end of epoch 2 (4 batches per epoch)
def test_resume_is_bit_identical(datasets, data, stop_after):
    mixup = Mixup(num_classes=N if data == "unique_list" else 10, alpha=0.4, cutmix_alpha=1.0, seed=11)

    def build(checkpoint=None):
        if data == "unique_list":
            return _train(datasets, checkpoint=checkpoint)
        return cifar_train(datasets[data], batch_size=12, device="cpu", num_threads=1, seed=5,
                           checkpoint=checkpoint)

    def loader(pipe, state=None):
        return MixupIterator(pipe, mixup, mean=MEAN, std=STD, dtype=torch.bfloat16, channels_last=True,
                             return_clean=True, state=state)

    total = 14  # into epoch 4
    reference = _run(loader(build()), total)

    first = loader(build())
    head = []
    while len(head) < stop_after:  # consume exactly stop_after batches, as a training loop would
        for batch in first:
            head.append(batch)
            if len(head) == stop_after:
                break
    state = first.state_dict()
    assert isinstance(state["dali"], (str, bytes)) and state["epoch"] * len(first) + state["step"] == stop_after
    resumed = loader(build(checkpoint=state["dali"]), state=state)
    tail = _run(resumed, total - stop_after)
    for k, (got, want) in enumerate(zip(tail, reference[stop_after:])):
        for a, b in zip(got, want):
            assert torch.equal(a, b), f"batch {stop_after + k}"


def test_return_params_gives_the_mix_without_a_clean_batch(datasets):
    mixup = Mixup(num_classes=N, alpha=1.0, seed=6)
    with_clean = _run(MixupIterator(_train(datasets), mixup, mean=MEAN, std=STD, return_clean=True), 3)
    loader = MixupIterator(_train(datasets), mixup, mean=MEAN, std=STD, return_params=True)
    for got, want in zip(_run_batches(loader, 3), with_clean):
        assert isinstance(got, MixedBatch) and got.clean is None
        for name in ("images", "targets", "index", "lam", "labels"):
            assert torch.equal(getattr(got, name), want[MixedBatch._fields.index(name)]), name


def _run_batches(loader, steps):
    it = iter(loader)
    return [next(it) for _ in range(steps)]


def test_same_seed_same_stream_and_ranks_differ(datasets):
    def stream(seed, rank):
        mixup = Mixup(num_classes=N, alpha=1.0, mode="elem", seed=seed)
        return _run(MixupIterator(_train(datasets), mixup, mean=MEAN, std=STD, rank=rank, return_clean=True), 5)

    a, b = stream(0, 0), stream(0, 0)
    assert all(torch.equal(x, y) for p, q in zip(a, b) for x, y in zip(p, q))
    other_rank = stream(0, 1)
    other_seed = stream(1, 0)
    for other in (other_rank, other_seed):
        assert all(torch.equal(p[5], q[5]) for p, q in zip(a, other))  # same data: the same labels
        assert not any(torch.equal(p[4], q[4]) for p, q in zip(a, other))  # different lam every step


@pytest.mark.parametrize("mixup", [None, Mixup(num_classes=N, alpha=1.0, seed=0)])
def test_yielded_batch_survives_the_next_two_steps(datasets, mixup):
    loader = MixupIterator(_train(datasets), mixup, mean=MEAN, std=STD)
    it = iter(loader)
    first = next(it)
    kept = [t.clone() for t in first]
    next(it)
    next(it)
    assert all(torch.equal(a, b) for a, b in zip(first, kept))


def test_state_without_its_checkpoint_is_refused(datasets):
    mixup = Mixup(num_classes=N, seed=0)
    loader = MixupIterator(_train(datasets), mixup, mean=MEAN, std=STD)
    _run(loader, 2)
    state = loader.state_dict()
    with pytest.raises(ValueError, match="not restored from this state's DALI checkpoint"):
        MixupIterator(_train(datasets), mixup, mean=MEAN, std=STD, state=state)
    with pytest.raises(ValueError, match="state was taken at rank 0, but rank is 1"):
        MixupIterator(_train(datasets, checkpoint=state["dali"]), mixup, mean=MEAN, std=STD, state=state, rank=1)
    with pytest.raises(ValueError, match="state was taken with mixup seed 0, but mixup has seed 4"):
        MixupIterator(_train(datasets, checkpoint=state["dali"]), Mixup(num_classes=N, seed=4), mean=MEAN, std=STD,
                      state=state)
    with pytest.raises(ValueError, match="state must be a dict from MixupIterator.state_dict"):
        MixupIterator(_train(datasets), mixup, mean=MEAN, std=STD, state={"dali": state["dali"]})


def test_len_and_counters(datasets):
    loader = MixupIterator(_train(datasets), None, mean=MEAN, std=STD)
    assert len(loader) == 4 and loader.batch_size == 4
    _epoch(loader)
    assert (loader.epoch, loader.step) == (1, 0)
    _run(loader, 2)
    assert (loader.epoch, loader.step) == (1, 2)


def test_cuda_kernel_under_the_simulator_agrees_with_the_cpu_twin(datasets, monkeypatch):
    from numba import config
    if not config.ENABLE_CUDASIM:
        pytest.skip("needs NUMBA_ENABLE_CUDASIM=1")
    import gpumix.kernels.mix_normalize_cuda as cuda_kernel
    import gpumix.ops

    mixup = Mixup(num_classes=10, alpha=0.4, cutmix_alpha=1.0, seed=2)

    def loader():
        pipe = cifar_train(datasets["cifar10-binary"], batch_size=3, device="cpu", num_threads=1, seed=1)
        return MixupIterator(pipe, mixup, mean=MEAN, std=STD, dtype=torch.float16, return_clean=True)

    want = _run(loader(), 2)
    calls = []

    def sim_kernel(batch):
        calls.append(batch.shape)
        return cuda_kernel

    monkeypatch.setattr(gpumix.ops, "kernel_module", sim_kernel)
    got = _run(loader(), 2)
    assert len(calls) == 2
    for p, q in zip(got, want):
        # The CPU twin may fuse a multiply-add that the simulator does not: the mixed
        # float32 values agree to an ulp, so fp16 images agree within fp16's bound.
        torch.testing.assert_close(p[0].double(), q[0].double(), rtol=1e-3, atol=1e-3)
        for name, a, b in zip(MixedBatch._fields[1:], p[1:], q[1:]):
            assert torch.equal(a, b), name


# --- bad pipelines and arguments -----------------------------------------------------------------------------

@pipeline_def(batch_size=2, num_threads=1, device_id=None)
def _three_outputs(root):
    jpegs, labels = fn.readers.file(file_root=root, name="Reader")
    images = fn.decoders.image(jpegs, device="cpu")
    return fn.resize(images, size=(8, 8)), labels, labels


@pipeline_def(batch_size=2, num_threads=1, device_id=None)
def _float_images(root):
    jpegs, labels = fn.readers.file(file_root=root, name="Reader")
    images = fn.resize(fn.decoders.image(jpegs, device="cpu"), size=(8, 8))
    return fn.cast(images, dtype=types.FLOAT), labels


@pipeline_def(batch_size=2, num_threads=1, device_id=None)
def _float_labels(root):
    jpegs, labels = fn.readers.file(file_root=root, name="Reader")
    images = fn.resize(fn.decoders.image(jpegs, device="cpu"), size=(8, 8))
    return images, fn.cast(labels, dtype=types.FLOAT)


@pipeline_def(batch_size=2, num_threads=1, device_id=None)
def _any_size(root):
    jpegs, labels = fn.readers.file(file_root=root, name="Reader", random_shuffle=True, seed=1)
    images = fn.decoders.image(jpegs, device="cpu")
    return fn.resize(images, resize_shorter=fn.random.uniform(range=(8, 30))), labels


@pytest.mark.parametrize("build,match", [
    (_three_outputs, r"pipeline must have 2 outputs \(uint8 HWC images, integer labels\), got 3"),
    (_float_images, "pipeline output 0 must be uint8 HWC images"),
    (_float_labels, "pipeline output 1 must be integer labels"),
    (_any_size, "pipeline images must all have one fixed size"),
])
def test_bad_pipelines_are_refused_at_construction(datasets, build, match):
    with pytest.raises(ValueError, match=match):
        MixupIterator(build(datasets["imagenet"]), None, mean=MEAN, std=STD)


def test_wrong_reader_name(datasets):
    with pytest.raises(ValueError, match="reader_name: the pipeline has no reader named 'Files'"):
        MixupIterator(_train(datasets), None, mean=MEAN, std=STD, reader_name="Files")


def test_not_a_pipeline():
    with pytest.raises(TypeError, match="pipeline must be a nvidia.dali Pipeline, got list"):
        MixupIterator([1, 2], None, mean=MEAN, std=STD)


def test_mean_without_a_channel_count(datasets):
    with pytest.raises(ValueError, match="mean must have 1 or 3 values"):
        MixupIterator(_train(datasets), None, mean=[1.0, 2.0], std=STD)


def test_channels_disagree_with_the_pipeline(datasets):
    with pytest.raises(ValueError, match=r"pipeline images must be HWC with 1 channels \(as mean and std\)"):
        MixupIterator(_train(datasets), None, mean=[120.0], std=[60.0])


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(mixup="mixup"), TypeError, "mixup must be a gpumix.Mixup or None, got str"),
    (dict(last_batch_policy="pad"), ValueError, "last_batch_policy must be 'partial', 'drop' or 'fill', got 'pad'"),
    (dict(rank=-1), ValueError, "rank must be >= 0, got -1"),
    (dict(return_clean=1), TypeError, "return_clean must be a bool, got 1"),
    (dict(return_clean=True), ValueError, "return_clean=True needs mixup"),
    (dict(return_params=True), ValueError, "return_params=True needs mixup"),
    (dict(return_params="yes"), TypeError, "return_params must be a bool, got 'yes'"),
    (dict(std=[1.0, 0.0, 1.0]), ValueError, r"std\[1\] must be > 0, got 0.0"),
    (dict(std=[1.0, float("nan"), 1.0]), ValueError, r"std\[1\] must be finite, got nan"),
    (dict(std=[1.0, 1.0, float("inf")]), ValueError, r"std\[2\] must be finite, got inf"),
    (dict(std=[-58.0, 1.0, 1.0]), ValueError, r"std\[0\] must be > 0, got -58.0"),
    (dict(mean=[float("nan"), 1.0, 1.0]), ValueError, r"mean\[0\] must be finite, got nan"),
    (dict(mean=[1.0, -float("inf"), 1.0]), ValueError, r"mean\[1\] must be finite, got -inf"),
    (dict(std=[1.0, 1e-3, 1.0], dtype=torch.float16), ValueError,
     r"mean\[1\] = 116.28 and std\[1\] = 0.001 map pixel values 0-255 to magnitudes up to 1.387e\+05, beyond "
     r"the largest torch.float16"),
    (dict(dtype=torch.float64), ValueError, "dtype must be one of"),
    (dict(reader_name=""), TypeError, "reader_name must be a non-empty str"),
    (dict(num_classes=1), ValueError, "num_classes must be >= 2, got 1"),
    (dict(num_classes=4.0), TypeError, "num_classes must be an int, got 4.0"),
    (dict(mixup=Mixup(num_classes=N, seed=0), num_classes=N + 1), ValueError,
     f"num_classes is {N + 1} but mixup.num_classes is {N}"),
])
def test_bad_arguments(datasets, kwargs, error, match):
    args = dict(mixup=None, mean=MEAN, std=STD)
    args.update(kwargs)
    mixup = args.pop("mixup")
    with pytest.raises(error, match=match):
        MixupIterator(_train(datasets), mixup, **args)


def test_labels_outside_num_classes_name_the_first_bad_one(datasets):
    loader = MixupIterator(_train(datasets), Mixup(num_classes=4, seed=0), mean=MEAN, std=STD)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\), got labels\[\d+\] = \d+"):
        _run(loader, 4)


def test_labels_outside_num_classes_name_exactly_the_first_bad_one(datasets):
    # unique_list labels sample i with i; the same pipeline without mixup shows the first batch's labels
    _, labels = next(MixupIterator(_train(datasets), None, mean=MEAN, std=STD))
    bad = (labels >= 4).nonzero().flatten().tolist()
    assert bad, labels
    loader = MixupIterator(_train(datasets), Mixup(num_classes=4, seed=0), mean=MEAN, std=STD)
    with pytest.raises(ValueError, match=rf"^labels must be in \[0, 4\), got labels\[{bad[0]}\] = "
                                         rf"{int(labels[bad[0]])}$"):
        next(loader)


def test_without_mixup_num_classes_checks_the_labels_too(datasets):
    _, labels = next(MixupIterator(_train(datasets), None, mean=MEAN, std=STD))
    bad = (labels >= 4).nonzero().flatten().tolist()
    assert bad, labels
    loader = MixupIterator(_train(datasets), None, mean=MEAN, std=STD, num_classes=4)
    with pytest.raises(ValueError, match=rf"^labels must be in \[0, 4\), got labels\[{bad[0]}\] = "
                                         rf"{int(labels[bad[0]])}$"):
        next(loader)
    fitting = MixupIterator(_train(datasets), None, mean=MEAN, std=STD, num_classes=N)  # labels 0..N-1 all pass
    # the partial policy: each sample once
    assert sorted(torch.cat([labels for _, labels in fitting]).tolist()) == list(range(N))


def test_lastbatch_enum_values():
    assert [p.value for p in LastBatch] == ["partial", "drop", "fill"]


def test_val_pipeline_validation_use(datasets):
    loader = MixupIterator(imagenet_val(datasets["file_list"], batch_size=4, crop=16, device="cpu", num_threads=1),
                           None, mean=MEAN, std=STD)
    labels = torch.cat([y for _, y in loader])
    assert sorted(labels.tolist()) == [0] * 5 + [1] * 5 + [2] * 5


def test_erasing_with_and_without_mixup_and_exact_resume(datasets):
    from gpumix import RandomErasing
    erasing = RandomErasing(prob=1.0, mode="rand", seed=3)
    plain = _run(MixupIterator(_train(datasets), None, mean=MEAN, std=STD), 2)
    erased = _run(MixupIterator(_train(datasets), None, mean=MEAN, std=STD, erasing=erasing), 2)
    for step, ((a, la), (b, lb)) in enumerate(zip(plain, erased)):
        assert torch.equal(la, lb)
        params = erasing.sample(a.shape[0], (16, 16), 3, epoch=0, step=step)
        for i in range(a.shape[0]):
            y0, x0, y1, x1 = params.boxes[i, 0].tolist()
            inside = torch.zeros(16, 16, dtype=torch.bool)
            inside[y0:y1, x0:x1] = True
            assert torch.equal(b[i][:, ~inside], a[i][:, ~inside])
            assert torch.equal(b[i][:, inside], params.colors[i, 0].view(3, 1).expand(3, int(inside.sum())))
    mixup = Mixup(num_classes=N, alpha=0.4, seed=11)

    def loader(pipe, state=None):
        return MixupIterator(pipe, mixup, mean=MEAN, std=STD, erasing=erasing, state=state)

    reference = _run(loader(_train(datasets)), 7)
    first = loader(_train(datasets))
    _run(first, 5)
    state = first.state_dict()
    assert state["erasing_seed"] == 3
    tail = _run(loader(_train(datasets, checkpoint=state["dali"]), state=state), 2)
    for got, want in zip(tail, reference[5:]):
        assert all(torch.equal(a, b) for a, b in zip(got, want))
    with pytest.raises(ValueError, match="state was taken with erasing seed 3, but erasing has seed None"):
        MixupIterator(_train(datasets, checkpoint=state["dali"]), mixup, mean=MEAN, std=STD, state=state)
    with pytest.raises(TypeError, match="erasing must be a gpumix.RandomErasing or None, got dict"):
        MixupIterator(_train(datasets), mixup, mean=MEAN, std=STD, erasing={})
