"""gpumix.train.checkpoint: round trips, crash and full-disk safety, refusing pickled code, RNG state."""
import errno
import os
import pickle
import random
import resource
import signal

import numpy as np
import pytest
import torch

from gpumix.atomic import remove_partial_writes
from gpumix.train import checkpoint as ckpt


def _state(seed):
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(5, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    model(torch.randn(4, 5, generator=g)).square().sum().backward()
    opt.step()
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": 17 + seed,
        "loss": 1.25 + seed,
        "name": "run",
        "best": None,
        "nested": {"a": [torch.randn(2, 2, generator=g, dtype=torch.float64), (1, "x")],
                   "b": torch.randint(0, 9, (3,), generator=g, dtype=torch.int32)},
    }


def _assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert type(a) is type(b) and a == b


def _files(folder):
    return sorted(os.listdir(folder))


def test_round_trip(tmp_path):
    path = tmp_path / ckpt.CHECKPOINT_NAME
    assert ckpt.latest_checkpoint(tmp_path) is None
    state = _state(0)
    ckpt.save_checkpoint(path, state)
    assert ckpt.latest_checkpoint(tmp_path) == str(path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    _assert_same(ckpt.load_checkpoint(path), state)
    # a later save replaces it, and only the checkpoint is left in the folder
    ckpt.save_checkpoint(path, _state(1))
    assert ckpt.load_checkpoint(path)["step"] == 18 and _files(tmp_path) == [ckpt.CHECKPOINT_NAME]


def test_refuses_state_that_weights_only_cannot_load(tmp_path):
    path = tmp_path / "c.pt"
    with pytest.raises(TypeError, match=r"checkpoint state\['metrics'\]\['acc'\] is a numpy.float64, which "
                                        r"torch.load\(weights_only=True\) refuses"):
        ckpt.save_checkpoint(path, {"metrics": {"acc": np.float64(0.5)}})
    assert _files(tmp_path) == []


def test_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / ckpt.CHECKPOINT_NAME
    ckpt.save_checkpoint(path, _state(0))
    before = path.read_bytes()

    def crash(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(RuntimeError, match="killed mid-write"):
        ckpt.save_checkpoint(path, _state(1))
    assert path.read_bytes() == before and _files(tmp_path) == [ckpt.CHECKPOINT_NAME]


def test_full_disk_at_fsync_is_an_oserror_naming_the_path(tmp_path, monkeypatch):
    path = tmp_path / ckpt.CHECKPOINT_NAME
    ckpt.save_checkpoint(path, _state(0))
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"writing checkpoint .*checkpoint.pt: No space left on device") as info:
        ckpt.save_checkpoint(path, _state(1))
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before and _files(tmp_path) == [ckpt.CHECKPOINT_NAME]


def test_a_real_write_failure_inside_torch_save_is_an_oserror(tmp_path):
    """The kernel refuses the write (file size limit): torch.save's RuntimeError is reported as the OSError."""
    path = tmp_path / ckpt.CHECKPOINT_NAME
    ckpt.save_checkpoint(path, {"small": torch.ones(3)})
    before = path.read_bytes()
    big = {"weights": torch.randn(200_000)}
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with pytest.raises(OSError, match=r"writing checkpoint .*checkpoint.pt: File too large") as info:
            ckpt.save_checkpoint(path, big)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert info.value.errno == errno.EFBIG
    assert path.read_bytes() == before and _files(tmp_path) == [ckpt.CHECKPOINT_NAME]


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, protocol):
    control = tmp_path / "RAN"
    pickle.loads(pickle.dumps(_Exploit(control), protocol=protocol))  # plain unpickling does run the command
    assert control.exists()
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": _Exploit(marker)}, f, protocol=protocol)
    with pytest.raises(pickle.UnpicklingError, match=r"checkpoint .*evil.pt was refused by weights_only loading"):
        ckpt.load_checkpoint(path)
    assert not marker.exists()


def test_missing_truncated_and_non_dict_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint .*nothing.pt does not exist"):
        ckpt.load_checkpoint(tmp_path / "nothing.pt")
    good = tmp_path / "good.pt"
    ckpt.save_checkpoint(good, _state(0))
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"checkpoint .*cut.pt is truncated or not a torch checkpoint"):
        ckpt.load_checkpoint(cut)
    listed = tmp_path / "list.pt"
    torch.save([torch.ones(2)], listed)
    with pytest.raises(ValueError, match=r"checkpoint .*list.pt holds a list, expected a dict"):
        ckpt.load_checkpoint(listed)


def _draws():
    return (torch.rand(4).tolist(), [random.random() for _ in range(3)], random.gauss(0, 1),
            np.random.rand(3).tolist(), float(np.random.randn()))


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    torch.manual_seed(123)
    random.seed(456)
    np.random.seed(789)
    random.gauss(0, 1)  # leaves a cached Gaussian in random's state
    np.random.randn()  # odd number of normals: numpy caches one too
    path = tmp_path / ckpt.CHECKPOINT_NAME
    ckpt.save_checkpoint(path, {"rng": ckpt.rng_state()})
    expected = _draws()
    _draws()  # move every generator on
    ckpt.set_rng_state(ckpt.load_checkpoint(path)["rng"])
    assert _draws() == expected


def test_remove_partial_writes_takes_only_the_killed_writes_temporaries(tmp_path):
    target = tmp_path / ckpt.CHECKPOINT_NAME
    ckpt.save_checkpoint(target, _state(3))
    partial = [tmp_path / f".{ckpt.CHECKPOINT_NAME}.abc123.tmp", tmp_path / f".{ckpt.CHECKPOINT_NAME}.x_y.tmp"]
    others = [tmp_path / "metrics.jsonl", tmp_path / ".other.pt.abc.tmp", tmp_path / f"{ckpt.CHECKPOINT_NAME}.tmp"]
    for path in partial + others:
        path.write_bytes(b"half")
    assert remove_partial_writes(target) == sorted(str(p) for p in partial)
    assert sorted(os.listdir(tmp_path)) == sorted([ckpt.CHECKPOINT_NAME] + [p.name for p in others])
    assert remove_partial_writes(target) == []
    assert remove_partial_writes(tmp_path / "missing" / ckpt.CHECKPOINT_NAME) == []


@pytest.mark.parametrize("state, message", [
    ({"weights": torch.ones(2)}, r"is not a gpumix-train checkpoint \(no model and config\)"),
    ({"format": "other/1", "model": {}, "config": {"dataset": "cifar10"}},
     r"is not a gpumix-train checkpoint \(format 'other/1', expected 'gpumix.train/1'\)"),
    ({"format": ckpt.CHECKPOINT_FORMAT, "model": {}, "config": {"dataset": "imagenet", "arch": "resnet18"}},
     r"trained on 'imagenet'; some-tool reads CIFAR-format data \(cifar10, cifar100\)"),
])
def test_load_trained_model_refuses_what_is_not_a_cifar_run(tmp_path, state, message):
    path = tmp_path / "c.pt"
    ckpt.save_checkpoint(path, state)
    with pytest.raises(ValueError, match=message):
        ckpt.load_trained_model(path, "some-tool")
