"""The trainer end to end on the CPU: one process, exact resume, torchrun with gloo (2 ranks, 2 nodes), errors."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from gpumix.train.__main__ import main
from gpumix.train.checkpoint import load_checkpoint
from gpumix.train.metrics import read_metrics

TINY = ["--arch", "resnet18", "--crop", "16", "--device", "cpu", "--num-threads", "1", "--warmup-epochs", "0",
        "--peak-lr", "0.05", "--base-lr", "0.05", "--log-every", "2"]


@pytest.fixture(scope="module")
def imagenet(train_val):
    """DIR/train (4 classes x 12 images) and DIR/val (4 x 5) of small JPEGs."""
    return train_val(train_per_class=12, val_per_class=5, size=(20, 24))


def test_single_process_run_writes_everything(imagenet, tmp_path):
    out = tmp_path / "run"
    assert main(["--data", imagenet, "--epochs", "2", "--global-batch-size", "16", "--output", str(out)] + TINY) == 0
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == 6 and state["epoch"] == 2 and state["reason"] == "epoch"  # 48 // 16 = 3 steps/epoch
    records = read_metrics(out / "metrics.jsonl")
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert all(r["loss"] > 0 and r["images_per_s"] > 0 and 0 <= r["data_wait"] <= 1 for r in steps)
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert all(r["val_samples"] == 20 and 0 <= r["top1"] <= r["top5"] <= 1 for r in epochs)
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["global_batch_size"] == 16 and run["settings"]["num_classes"] == 4
    assert run["versions"]["torch"] and "git" in run and run["settings"]["seed"] == 0
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "summary.json").read_text())["step"] == 6


@pytest.mark.parametrize("extra", [
    ["--loss", "pair", "--cutmix-alpha", "1.0"],
    ["--loss", "soft", "--label-smoothing", "0.1"],
    ["--loss", "mixupe", "--mixup-alpha", "1.0", "--mixupe-tau", "inf"],
], ids=["pair-cutmix", "soft", "mixupe"])
def test_resumed_run_ends_with_the_same_weights(imagenet, tmp_path, extra):
    common = ["--data", imagenet, "--epochs", "2", "--global-batch-size", "16", "--deterministic"] + TINY + extra
    assert main(common + ["--output", str(tmp_path / "whole")]) == 0
    # stop mid-epoch 1 (step 4 of 6), then resume to the end
    assert main(common + ["--output", str(tmp_path / "split"), "--max-steps", "4"]) == 0
    halfway = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert (halfway["step"], halfway["epoch"], halfway["epoch_step"], halfway["reason"]) == (4, 1, 1, "max_steps")
    assert main(common + ["--output", str(tmp_path / "split"), "--resume"]) == 0
    whole = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["model"]
    split = load_checkpoint(tmp_path / "split" / "checkpoint.pt")["model"]
    assert whole.keys() == split.keys()
    for name in whole:
        assert torch.equal(whole[name], split[name]), name


def test_erm_and_cifar(datasets, tmp_path):
    out = tmp_path / "cifar"
    args = ["--data", datasets["cifar10-binary"], "--dataset", "cifar10", "--arch", "preactresnet18", "--epochs",
            "1", "--global-batch-size", "8", "--mixup-alpha", "0", "--device", "cpu", "--num-threads", "1",
            "--warmup-epochs", "0", "--base-lr", "0.1", "--peak-lr", "0.1", "--output", str(out)]
    assert main(args) == 0
    epochs = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "epoch"]
    assert epochs[0]["val_samples"] == 40 - 32  # the fixture's test split: every sample counted once


def test_uneven_global_batch_is_an_error(imagenet, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert main(["--data", imagenet, "--global-batch-size", "16", "--output", str(tmp_path / "x")] + TINY) == 1
    assert "global_batch_size 16 does not divide evenly across 3 ranks" in capsys.readouterr().err


def test_resume_without_a_checkpoint_and_reuse_without_resume(imagenet, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["--data", imagenet, "--global-batch-size", "16", "--output", out, "--resume"] + TINY) == 1
    assert "--resume: no checkpoint in" in capsys.readouterr().err
    assert main(["--data", imagenet, "--global-batch-size", "16", "--output", out, "--max-steps", "1"] + TINY) == 0
    assert main(["--data", imagenet, "--global-batch-size", "16", "--output", out, "--max-steps", "1"] + TINY) == 1
    assert "already holds a checkpoint" in capsys.readouterr().err


def test_resume_with_other_settings_is_refused(imagenet, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["--data", imagenet, "--global-batch-size", "16", "--output", out, "--max-steps", "1"] + TINY) == 0
    assert main(["--data", imagenet, "--global-batch-size", "16", "--output", out, "--resume", "--seed", "3"]
                + TINY) == 1
    assert "--resume: seed is 3 but the checkpoint's run used 0" in capsys.readouterr().err


def test_tensorboard_without_its_package_says_how_to_get_it(imagenet, tmp_path, capsys):
    try:
        import tensorboard  # noqa: F401
        pytest.skip("tensorboard is installed")
    except ImportError:
        pass
    out = str(tmp_path / "tb")
    assert main(["--data", imagenet, "--global-batch-size", "16", "--output", out, "--tensorboard"] + TINY) == 1
    assert "--tensorboard needs the tensorboard package: pip install 'gpumix[tensorboard]'" in capsys.readouterr().err


def test_missing_data_is_named(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")] + TINY) == 1
    assert "nowhere has neither a train/ folder nor a train.txt file list" in capsys.readouterr().err


# --- torchrun ------------------------------------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(launcher_args, train_args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run"] + launcher_args + ["-m", "gpumix.train"] + train_args
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def imagenet_1k(train_val):
    """Enough 12x12 images for one global batch of 1024 (DROP keeps full batches only)."""
    return train_val(train_per_class=260, val_per_class=3, size=(12, 12), seed=3)


def test_two_process_gloo_run_at_global_batch_1024(imagenet_1k, tmp_path):
    out = tmp_path / "ddp"
    proc = _torchrun(["--standalone", "--nproc_per_node=2"],
                     ["--data", imagenet_1k, "--global-batch-size", "1024", "--epochs", "2", "--output", str(out)]
                     + TINY + ["--crop", "8"], tmp_path)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-3000:]
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["world_size"] == 2 and state["step"] == 2 and len(state["iterators"]) == 2
    assert state["iterators"][0]["dali"] != state["iterators"][1]["dali"]
    epochs = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "epoch"]
    assert [r["val_samples"] for r in epochs] == [12, 12]


def test_two_nodes_with_c10d_rendezvous_on_localhost(imagenet, tmp_path):
    out = tmp_path / "nodes"
    port = _free_port()
    launcher = ["--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}",
                "--rdzv_id=gpumix-test", "--max_restarts=0"]
    args = ["--data", imagenet, "--global-batch-size", "16", "--epochs", "1", "--output", str(out)] + TINY
    nodes = [_torchrun(launcher, args, tmp_path) for _ in range(2)]
    logs = [p.communicate(timeout=600)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], "\n".join(log[-2000:] for log in logs)
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["world_size"] == 2 and state["step"] == 3
    epochs = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "epoch"]
    assert epochs[0]["val_samples"] == 20


def test_scanned_lists_feed_the_trainer_from_their_own_folder(imagenet, tmp_path, capsys):
    """gpumix-scan's lists, written outside the data (absolute paths), feed gpumix-train from their own folder;
    the run reads exactly the listed images."""
    from gpumix.tools import scan

    lists = tmp_path / "lists"
    lists.mkdir()
    for split in ("train", "val"):
        assert scan.main([os.path.join(imagenet, split), "--output", str(lists / f"{split}.txt"),
                          "--workers", "1"]) == 0
    # drop one val image from the list: the run must count 19, not the folder's 20
    rows = (lists / "val.txt").read_text().splitlines()
    (lists / "val.txt").write_text("\n".join(rows[1:]) + "\n")
    out = tmp_path / "run"
    assert main(["--data", str(lists), "--epochs", "1", "--global-batch-size", "16", "--output", str(out)] + TINY) == 0
    epochs = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "epoch"]
    assert epochs[0]["val_samples"] == 19
    assert json.loads((out / "run.json").read_text())["settings"]["num_classes"] == 4


def test_a_list_wins_over_the_folder_beside_it(tmp_path):
    from gpumix.train.data import imagenet_split

    (tmp_path / "train").mkdir()
    assert imagenet_split(str(tmp_path), "train") == str(tmp_path / "train")
    (tmp_path / "train.txt").write_text("train/a.jpg 0\n")
    assert imagenet_split(str(tmp_path), "train") == str(tmp_path / "train.txt")
