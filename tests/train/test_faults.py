"""Faults injected into training runs: kills, crashes mid-checkpoint, dead ranks, NaN, full disks, bad files.

Runs are tiny (24 training images of 20x24, batches of 8, so 3 steps per
epoch; squeezenet1_1 on 32x32 crops: no batch norm, a 10 MB checkpoint) and
deterministic, so a resumed run must end with exactly the weights of an
uninterrupted one. Runs whose weights are compared all run in fresh
processes with OMP_NUM_THREADS=1: torch's CPU results can change after
``torch.set_num_threads`` is toggled in a process, so in-process runs could
differ from each other for reasons that have nothing to do with resuming.
Faults that kill a process run a wrapper that calls
``gpumix.train.__main__.main`` after arranging the fault by monkeypatching,
so no test hook lives in the trainer; every subprocess has a timeout, so a
hang fails the test instead of blocking it.
"""
import errno
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from gpumix import atomic as atomic_module
from gpumix.train import loop
from gpumix.train import metrics as metrics_module
from gpumix.train.__main__ import main
from gpumix.train.checkpoint import CHECKPOINT_NAME, load_checkpoint
from gpumix.train.metrics import read_metrics

STEPS = 6  # 2 epochs of 3 steps
BASE = ["--epochs", "2", "--global-batch-size", "8", "--arch", "squeezenet1_1", "--crop", "32", "--device", "cpu",
        "--num-threads", "1", "--warmup-epochs", "0", "--base-lr", "0.01", "--peak-lr", "0.01"]
ARGS = BASE + ["--log-every", "1", "--checkpoint-every", "1"]
TIMEOUT = 180  # seconds any subprocess here may take before the test fails

# Runs gpumix-train with one fault arranged by monkeypatching (GPUMIX_FAULT, at step GPUMIX_FAULT_STEP):
#   pause: when step GPUMIX_FAULT_STEP + 1 begins, create the file GPUMIX_FAULT_MARK and sleep (the test kills it);
#   kill-in-save: SIGKILL itself halfway through writing the checkpoint of step GPUMIX_FAULT_STEP;
#   die-rank1 / stall-rank1: rank 1 exits (os._exit(3)) / sleeps for an hour when step GPUMIX_FAULT_STEP + 1 begins.
WRAPPER = r"""
import io, os, signal, sys, time
import torch
from gpumix import atomic as atomic_module
from gpumix.train import loop

fault, at = os.environ.get("GPUMIX_FAULT"), int(os.environ.get("GPUMIX_FAULT_STEP", "0"))
optimize, save = loop._Trainer._optimize, torch.save

def faulty_optimize(self, batch):
    if self.step == at:
        if fault == "pause":
            open(os.environ["GPUMIX_FAULT_MARK"], "w").close()
            time.sleep(3600)
        if fault == "die-rank1" and self.dist.rank == 1:
            os._exit(3)
        if fault == "stall-rank1" and self.dist.rank == 1:
            time.sleep(3600)
    return optimize(self, batch)

def dying_save(obj, f, *args, **kwargs):
    if isinstance(obj, dict) and obj.get("step") == at:
        whole = io.BytesIO()
        save(obj, whole, *args, **kwargs)
        f.write(whole.getvalue()[: len(whole.getvalue()) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return save(obj, f, *args, **kwargs)

loop._Trainer._optimize = faulty_optimize
if fault == "kill-in-save":
    torch.save = dying_save
from gpumix.train.__main__ import main
raise SystemExit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def data(train_val):
    """DIR/train (4 classes x 6 images) and DIR/val (4 x 2)."""
    return train_val(train_per_class=6, val_per_class=2, size=(20, 24))


def _env(**faults):
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **faults)


def _wrapper(folder):
    path = os.path.join(folder, "faulty_train.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(WRAPPER)
    return path


def _start(tmp_path, args, **faults):
    """Start the wrapper (a plain gpumix-train run without faults) in a fresh process."""
    return subprocess.Popen([sys.executable, _wrapper(tmp_path)] + args, env=_env(**faults), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(proc):
    """Wait for a process from ``_start``; its exit code and the end of its stderr."""
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    return proc.returncode, err[-3000:]


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The final weights of the uninterrupted run; ``reference()`` waits for the run, which starts at once."""
    folder = tmp_path_factory.mktemp("reference")
    proc = _start(folder, ["--data", data, "--output", str(folder / "run")] + ARGS)
    weights = {}

    def get():
        if not weights:
            code, err = _finish(proc)
            assert code == 0, err
            state = load_checkpoint(folder / "run" / CHECKPOINT_NAME)
            assert state["step"] == STEPS
            weights.update(state["model"])
        return weights

    yield get
    proc.kill()


def _all_finite(state):
    return all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())


# --- killed processes ----------------------------------------------------------------------------------------

def test_killed_mid_epoch_and_mid_checkpoint_then_resumed_ends_with_the_same_weights(data, reference, tmp_path):
    """SIGKILL during step 3 (epoch 1), then a crash halfway through writing step 5's checkpoint (epoch 2):
    each time the last whole checkpoint is kept and --resume continues from it, to the uninterrupted weights."""
    out, mark = tmp_path / "run", tmp_path / "paused"
    run = ["--data", data, "--output", str(out)] + ARGS
    proc = _start(tmp_path, run, GPUMIX_FAULT="pause", GPUMIX_FAULT_STEP="2", GPUMIX_FAULT_MARK=str(mark))
    try:
        deadline = time.monotonic() + TIMEOUT
        while not mark.exists():  # step 2's checkpoint is written and step 3 has begun
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the run never reached step 3"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        assert _finish(proc)[0] == -signal.SIGKILL
    finally:
        proc.kill()
    killed = load_checkpoint(out / CHECKPOINT_NAME)
    assert (killed["step"], killed["epoch"], killed["epoch_step"]) == (2, 0, 2)

    code, err = _finish(_start(tmp_path, run + ["--resume"], GPUMIX_FAULT="kill-in-save", GPUMIX_FAULT_STEP="5"))
    assert code == -signal.SIGKILL, err
    temps = [name for name in os.listdir(out) if name.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].startswith(f".{CHECKPOINT_NAME}.")  # the half-written file
    previous = load_checkpoint(out / CHECKPOINT_NAME)
    assert (previous["step"], previous["epoch"], previous["epoch_step"]) == (4, 1, 1) and _all_finite(previous)

    code, err = _finish(_start(tmp_path, run + ["--resume"]))
    assert code == 0, err
    final = load_checkpoint(out / CHECKPOINT_NAME)
    assert final["step"] == STEPS
    want = reference()
    assert final["model"].keys() == want.keys()
    for name in want:
        assert torch.equal(final["model"][name], want[name]), name
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]  # the resume removed the half-written file
    # Step 5 was logged just before the crash in its checkpoint; the resume from step 4 dropped that line,
    # so the run that redid step 5 logs it once. Step 3 began but was never logged before the first kill.
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records if r["kind"] == "step"] == [1, 2, 3, 4, 5, 6]
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2]


# --- a dead or stalled rank ----------------------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dead_or_stalled_rank_stops_the_others_in_bounded_time(data, tmp_path):
    """Two runs of two one-process nodes each (c10d rendezvous), side by side: in one, rank 1 exits when step 2
    begins; in the other, it stalls there (outside any collective: nothing can wake it, and this test kills it).
    Node 1's launcher cannot stop rank 0, so rank 0 must stop by itself, with an error: at once when the
    connection closes, after --dist-timeout (5 s) when the peer stalls."""
    runs = {"die-rank1": r"Connection (closed|reset) by peer", "stall-rank1": r"Timed out waiting 5000ms"}
    nodes = {}
    start = time.monotonic()
    for fault in runs:
        folder = tmp_path / fault
        folder.mkdir()
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
                    "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{_free_port()}", f"--rdzv_id={fault}",
                    "--max_restarts=0", _wrapper(folder), "--data", data, "--output", str(folder / "run"),
                    "--dist-timeout", "5"] + ARGS
        nodes[fault] = []
        for n in range(2):
            with open(folder / f"node{n}.log", "w") as log:  # files, not pipes: nothing blocks on a full pipe
                nodes[fault].append(subprocess.Popen(launcher, env=_env(GPUMIX_FAULT=fault, GPUMIX_FAULT_STEP="1"),
                                                     cwd=folder, stdout=log, stderr=subprocess.STDOUT))

    def logs(fault):
        return [(tmp_path / fault / f"node{n}.log").read_text() for n in range(2)]

    def rank0_stopped(fault):
        return any(node.poll() is not None and "[rank0]" in log for node, log in zip(nodes[fault], logs(fault)))

    try:
        while not (all(node.poll() is not None for node in nodes["die-rank1"]) and rank0_stopped("stall-rank1")):
            assert time.monotonic() - start < TIMEOUT, {fault: [log[-1500:] for log in logs(fault)] for fault in runs}
            time.sleep(0.5)
        elapsed = time.monotonic() - start
        codes = {fault: [node.poll() for node in pair] for fault, pair in nodes.items()}  # before the kill below
    finally:
        for node in (node for pair in nodes.values() for node in pair):
            node.kill()
            node.wait()
    assert elapsed < 120, f"the ranks took {elapsed:.0f} s to stop"
    for fault, expected in runs.items():
        node, rank0 = next((n, log) for n, log in enumerate(logs(fault)) if "[rank0]" in log)
        assert codes[fault][node] not in (0, None) and re.search(expected, rank0), rank0[-3000:]
        # only step 1's checkpoint: step 2's collectives failed, and nothing was half-saved
        assert load_checkpoint(tmp_path / fault / "run" / CHECKPOINT_NAME)["step"] == 1
    assert all(code not in (0, None) for code in codes["die-rank1"])


# --- NaN -----------------------------------------------------------------------------------------------------

def _poison(monkeypatch, at, make_bad):
    """Make the loss function's ``at``-th call return ``make_bad(logits, loss)``."""
    calls = []
    pair_ce = loop.pair_ce

    def poisoned(logits, *args, **kwargs):
        loss = pair_ce(logits, *args, **kwargs)
        calls.append(1)
        return make_bad(logits, loss) if len(calls) == at else loss

    monkeypatch.setattr(loop, "pair_ce", poisoned)


def test_nan_loss_names_its_step_and_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch, capsys):
    """Losses are checked every --log-every steps: a NaN at step 5 is found at step 6, and named as step 5."""
    out = tmp_path / "run"
    _poison(monkeypatch, 5, lambda logits, loss: loss * float("nan"))
    assert main(["--data", data, "--output", str(out), "--log-every", "10"] + BASE) == 1
    err = capsys.readouterr().err
    assert f"gpumix-train: error: loss is nan at step 5 (epoch 2): stopped; the last good checkpoint " \
           f"{out}/{CHECKPOINT_NAME} is kept" in err
    kept = load_checkpoint(out / CHECKPOINT_NAME)
    assert kept["step"] == 3 and kept["reason"] == "epoch" and _all_finite(kept)
    assert max(r["step"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "step") == 3


def test_finite_loss_with_nan_gradients_never_checkpoints_nan_weights(data, tmp_path, monkeypatch, capsys):
    """sqrt(|x - x|) adds 0 to the loss but NaN to the gradient: the weights go bad while the loss stays finite."""
    out = tmp_path / "run"
    _poison(monkeypatch, 2, lambda logits, loss: loss + (logits - logits.detach()).abs().sqrt().sum())
    assert main(["--data", data, "--output", str(out)] + ARGS) == 1
    err = capsys.readouterr().err
    assert "gpumix-train: error: weights are not finite after step 2 (" in err
    assert f"holds NaN or Inf): stopped; the last good checkpoint {out}/{CHECKPOINT_NAME} is kept" in err
    kept = load_checkpoint(out / CHECKPOINT_NAME)
    assert kept["step"] == 1 and _all_finite(kept)


# --- a full disk ---------------------------------------------------------------------------------------------

class _FullDisk:
    """A text file whose writes fail with ENOSPC once ``after`` lines went through."""

    def __init__(self, f, after):
        self._f, self._left = f, after

    def write(self, text):
        if self._left <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._left -= text.count("\n")
        return self._f.write(text)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def _fill_disk(where, monkeypatch):
    """Arrange ENOSPC: at the fsync of the 2nd checkpoint's temporary file, at the 3rd metrics line, or writing
    summary.json."""
    if where == "checkpoint":
        calls, fsync = [], os.fsync

        def full(fd):
            if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(f".{CHECKPOINT_NAME}."):
                calls.append(fd)
                if len(calls) == 2:  # the 2nd checkpoint's temporary file
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return fsync(fd)

        monkeypatch.setattr(os, "fsync", full)
    elif where == "metrics":
        monkeypatch.setattr(metrics_module, "open", lambda *a, **k: _FullDisk(open(*a, **k), 2), raising=False)
    else:
        fdopen = os.fdopen

        def summary_fdopen(fd, *a, **k):  # gpumix.atomic's temporary file, .summary.json.<random>.tmp
            name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
            f = fdopen(fd, *a, **k)
            return _FullDisk(f, 0) if name.startswith(".summary.json.") else f

        monkeypatch.setattr(atomic_module.os, "fdopen", summary_fdopen)


@pytest.mark.parametrize("where, named, kept_step", [
    ("checkpoint", "writing checkpoint {out}/checkpoint.pt", 1),
    ("metrics", "writing metrics {out}/metrics.jsonl", 2),
    ("summary", "writing {out}/summary.json", 3),
], ids=["checkpoint", "metrics", "summary"])
def test_full_disk_is_a_clear_error_and_earlier_checkpoints_are_intact(data, tmp_path, monkeypatch, capsys, where,
                                                                       named, kept_step):
    out = tmp_path / "run"
    _fill_disk(where, monkeypatch)
    assert main(["--data", data, "--output", str(out), "--max-steps", "3"] + ARGS) == 1
    err = capsys.readouterr().err
    assert f"gpumix-train: error: [Errno 28] {named.format(out=out)}: No space left on device" in err, err[-2000:]
    kept = load_checkpoint(out / CHECKPOINT_NAME)
    assert kept["step"] == kept_step and _all_finite(kept)
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]


# --- untrusted or broken checkpoints, wrong class counts, broken images ------------------------------------

class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_resume_from_a_malicious_checkpoint_runs_nothing(data, tmp_path, capsys):
    out, marker = tmp_path / "run", tmp_path / "PWNED"
    out.mkdir()
    with open(out / CHECKPOINT_NAME, "wb") as f:
        pickle.dump({"format": "gpumix.train/1", "model": _Exploit(marker)}, f, protocol=2)
    assert main(["--data", data, "--output", str(out), "--resume"] + ARGS) == 1
    err = capsys.readouterr().err
    assert f"gpumix-train: error: checkpoint {out}/{CHECKPOINT_NAME} was refused by weights_only loading" in err
    assert "nothing in it was run" in err and "Traceback" not in err
    assert not marker.exists()


@pytest.mark.parametrize("content", [lambda good: good[: len(good) // 2], lambda good: b""],
                         ids=["truncated", "empty"])
def test_resume_from_a_damaged_checkpoint_is_a_clear_error(data, tmp_path, capsys, content):
    out = tmp_path / "run"
    out.mkdir()
    path = out / CHECKPOINT_NAME
    torch.save({"format": "gpumix.train/1", "model": {"w": torch.ones(1000)}}, path)
    path.write_bytes(content(path.read_bytes()))
    assert main(["--data", data, "--output", str(out), "--resume"] + ARGS) == 1
    assert f"gpumix-train: error: checkpoint {path} is truncated or not a torch checkpoint" in capsys.readouterr().err


def test_num_classes_below_the_folders_is_refused_before_training(data, tmp_path, capsys):
    assert main(["--data", data, "--output", str(tmp_path / "run"), "--num-classes", "3"] + ARGS) == 1
    assert "gpumix-train: error: num_classes: --num-classes is 3, but the train split has 4 classes (labels 0 to 3)" \
           in capsys.readouterr().err
    assert not (tmp_path / "run" / CHECKPOINT_NAME).exists()


@pytest.mark.parametrize("mixup_alpha", ["0.2", "0"])  # mixup: the operator finds it; ERM: the iterator does
def test_labels_beyond_num_classes_are_found_and_the_first_bad_one_named(train_val, tmp_path, capsys, mixup_alpha):
    """WebDataset shards carry no class count, so a too-small --num-classes is found while iterating."""
    root = train_val("webdataset", train_per_class=6, val_per_class=2, size=(20, 24))
    assert main(["--data", root, "--output", str(tmp_path / "run"), "--num-classes", "2",
                 "--mixup-alpha", mixup_alpha] + ARGS) == 1
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.startswith("gpumix-train: error: "))
    prefix = "gpumix-train: error: labels must be in [0, 2), got labels["
    assert line.startswith(prefix) and "Traceback" not in err, err[-2000:]
    position, value = line[len(prefix):].split("] = ")
    assert int(value) in (2, 3) and int(position) >= 0


def test_a_broken_image_stops_the_trainer_with_its_name_and_no_hang(data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(data, root)
    victim = sorted((root / "train" / "class_0002").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:300])
    proc = subprocess.run([sys.executable, "-m", "gpumix.train", "--data", str(root), "--output",
                           str(tmp_path / "run")] + ARGS, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"gpumix-train: error: DALI could not decode class_0002/{victim.name} (OSError: " in proc.stderr
    assert "Traceback" not in proc.stderr
