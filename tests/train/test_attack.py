"""gpumix-attack: FGSM and I-FGSM against float64 references, and the eps=0 error against the trainer's own eval."""
import json

import numpy as np
import pytest
import torch

from gpumix.datasets import STATS
from gpumix.ops import normalize
from gpumix.tools.cifar_writer import write_cifar10
from gpumix.train.attack import AttackConfig, AttackModel, fgsm, ifgsm, main, normalize_pixels
from gpumix.train.checkpoint import load_checkpoint, save_checkpoint
from gpumix.train.models import build_model

CIFAR_MEAN, CIFAR_STD = STATS["cifar10"].mean, STATS["cifar10"].std


def test_normalize_pixels_is_gpumix_normalize_bit_for_bit():
    batch = torch.from_numpy(np.random.default_rng(0).integers(0, 256, size=(5, 7, 6, 3), dtype=np.uint8))
    expected = normalize(batch, mean=CIFAR_MEAN, std=CIFAR_STD)
    pixels = batch.permute(0, 3, 1, 2).float().requires_grad_(True)
    got = normalize_pixels(pixels, CIFAR_MEAN, CIFAR_STD)
    assert got.dtype == torch.float32 and torch.equal(got, expected)
    got.sum().backward()  # differentiable: d/dx = 1/std per channel
    inv = torch.tensor([1 / s for s in CIFAR_STD], dtype=torch.float32).view(1, 3, 1, 1).expand_as(pixels)
    assert torch.equal(pixels.grad, inv)


@pytest.fixture
def linear():
    """An AttackModel over a random linear classifier on 3x4x4 images, and its weights in float64."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 5)).eval()
    attack_model = AttackModel(model=model, mean=CIFAR_MEAN, std=CIFAR_STD, channels_last=False,
                               dataset="cifar10", path="linear", step=None, last_eval=None)
    w, b = model[1].weight.detach().double(), model[1].bias.detach().double()
    return attack_model, w, b


def _reference_sign(w, b, pixels, labels):
    """sign of d CE / d pixels for logits = W ((x - mean) / std) + b, by hand in float64: W^T (p - onehot) / std."""
    x = pixels.double()
    mean = torch.tensor(CIFAR_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, dtype=torch.float64).view(1, 3, 1, 1)
    z = ((x - mean) / std).flatten(1)
    p = torch.softmax(z @ w.T + b, dim=1)
    g = ((p - torch.nn.functional.one_hot(labels, 5).double()) @ w).view_as(x) / std
    return g.sign(), g.abs()


def test_fgsm_matches_a_float64_reference(linear):
    model, w, b = linear
    rng = np.random.default_rng(2)
    pixels = torch.from_numpy(rng.integers(0, 256, size=(16, 3, 4, 4)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 5, size=16))
    before = pixels.clone()
    for eps in (0.5, 4.0, 300.0):
        adv = fgsm(model, pixels, labels, eps)
        sign, size = _reference_sign(w, b, pixels, labels)
        expected = (pixels.double() + eps * sign).clamp(0, 255).float()
        clear = size > 1e-9  # entries whose sign float32 cannot decide are left out (none expected)
        assert clear.float().mean() > 0.99
        assert torch.equal(adv[clear], expected[clear])
        assert adv.min() >= 0 and adv.max() <= 255
    assert torch.equal(pixels, before)  # input not modified
    assert torch.equal(fgsm(model, pixels, labels, 0.0), pixels)


def test_ifgsm_steps_stay_in_the_ball_and_match_a_float64_reference(linear):
    model, w, b = linear
    rng = np.random.default_rng(3)
    pixels = torch.from_numpy(rng.integers(0, 256, size=(16, 3, 4, 4)).astype(np.float32))
    pixels[:, 0, 0, 0] = 0.0  # edges of the pixel range
    pixels[:, 1, 0, 0] = 255.0
    labels = torch.from_numpy(rng.integers(0, 5, size=16))
    assert torch.equal(ifgsm(model, pixels, labels, 6.0, 1), fgsm(model, pixels, labels, 6.0))
    eps, steps = 6.0, 3
    adv = ifgsm(model, pixels, labels, eps, steps)
    assert (adv - pixels).abs().max() <= eps and adv.min() >= 0 and adv.max() <= 255
    x = pixels.double()
    for _ in range(steps):  # the reference: step eps/steps along the float64 gradient sign, project, clamp
        x = x + (eps / steps) * _reference_sign(w, b, x, labels)[0]
        x = torch.minimum(torch.maximum(x, pixels.double() - eps), pixels.double() + eps).clamp(0, 255)
    assert torch.allclose(adv.double(), x, atol=1e-4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A CIFAR-format folder (40 train, 35 test random images) and a checkpoint of one trainer epoch on it."""
    from gpumix.train.__main__ import main as train_main

    root = tmp_path_factory.mktemp("attack")
    rng = np.random.default_rng(4)
    rows = rng.integers(0, 256, size=(75, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=75)
    write_cifar10(root / "data", labels[:40], rows[:40], labels[40:], rows[40:])
    out = root / "run"
    args = ["--data", str(root / "data"), "--dataset", "cifar10", "--arch", "resnet18", "--epochs", "1",
            "--global-batch-size", "8", "--mixup-alpha", "0", "--device", "cpu", "--num-threads", "1",
            "--warmup-epochs", "0", "--base-lr", "0.05", "--peak-lr", "0.05", "--output", str(out)]
    assert train_main(args) == 0
    return dict(data=str(root / "data"), checkpoint=str(out / "checkpoint.pt"), root=root)


def test_eps_zero_error_is_the_trainers_own_evaluation(trained, tmp_path, capsys):
    path = tmp_path / "white.json"
    assert main([trained["checkpoint"], "--data", trained["data"], "--eps", "0", "8", "--steps", "2",
                 "--json", str(path)]) == 0
    out = json.loads(path.read_text())
    last_eval = load_checkpoint(trained["checkpoint"])["last_eval"]
    assert last_eval["val_samples"] == 35
    results = {(r["attack"], r["eps"]): r for r in out["results"]}
    assert sorted(results) == [("fgsm", 0.0), ("fgsm", 8.0), ("ifgsm", 0.0), ("ifgsm", 8.0)]
    for r in out["results"]:
        assert set(r) == {"attack", "eps", "top1_error", "source", "n"} and r["source"] is None and r["n"] == 35
    assert results[("fgsm", 0.0)]["top1_error"] == pytest.approx(1 - last_eval["top1"], abs=1e-12)
    assert results[("ifgsm", 0.0)]["top1_error"] == results[("fgsm", 0.0)]["top1_error"]
    assert out["run"]["settings"]["steps"] == 2 and out["run"]["git"] is not None
    assert "fgsm eps 8: top-1 error" in capsys.readouterr().out

    # black-box with the target as its own source is the white-box attack; --limit takes the first images
    path = tmp_path / "black.json"
    assert main([trained["checkpoint"], "--data", trained["data"], "--eps", "0", "8", "--steps", "2",
                 "--source", trained["checkpoint"], "--json", str(path)]) == 0
    black = json.loads(path.read_text())["results"]
    assert [r["source"] for r in black] == [trained["checkpoint"]] * 4
    assert [r["top1_error"] for r in black] == [r["top1_error"] for r in out["results"]]
    assert main([trained["checkpoint"], "--data", trained["data"], "--eps", "0", "--limit", "10",
                 "--json", str(path)]) == 0
    assert [r["n"] for r in json.loads(path.read_text())["results"]] == [10, 10]


@pytest.mark.parametrize("field, value, match", [
    ("eps", (), r"eps must hold at least one value"),
    ("eps", (1.0, -2.0), r"eps\[1\] must be >= 0.0, got -2.0"),
    ("eps", (2.0, 2.0), r"eps must not repeat a value"),
    ("steps", 0, r"steps must be >= 1, got 0"),
    ("limit", 0, r"limit must be >= 1, got 0"),
    ("device", "tpu", r"device must be one of"),
])
def test_bad_settings_are_named(field, value, match):
    with pytest.raises(ValueError, match=match):
        AttackConfig(checkpoint="c.pt", data="d", json="o.json", **{field: value})


def test_cli_help_and_errors(trained, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--data", "--eps", "--steps", "--source", "--limit", "--json", "0-255"):
        assert flag in text
    common = ["--data", trained["data"], "--json", str(tmp_path / "o.json")]
    assert main([trained["checkpoint"], *common, "--eps", "-1"]) == 1
    assert "eps[0] must be >= 0.0, got -1.0" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.pt"), *common]) == 1
    assert "missing.pt does not exist" in capsys.readouterr().err
    other = tmp_path / "other.pt"
    save_checkpoint(other, {"model": {}, "step": 1})
    assert main([str(other), *common]) == 1
    assert "is not a gpumix-train checkpoint" in capsys.readouterr().err
    state = load_checkpoint(trained["checkpoint"])
    state["config"]["dataset"] = "cifar100"
    state["model"] = build_model("resnet18", 100).state_dict()
    save_checkpoint(other, state)
    assert main([trained["checkpoint"], *common, "--source", str(other)]) == 1
    assert "was trained on cifar100, the target" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_plot_attack_errors_averages_seeds(tmp_path):
    from gpumix.train.attack import plot_attack_errors, read_results

    paths = []
    for seed, errors in enumerate(([0.1, 0.5], [0.2, 0.7])):
        results = [{"attack": kind, "eps": eps, "top1_error": e, "source": None, "n": 10}
                   for kind in ("fgsm", "ifgsm") for eps, e in zip((0.0, 4.0), errors)]
        paths.append(tmp_path / f"s{seed}.json")
        paths[-1].write_text(json.dumps({"results": results}))
    assert read_results(paths[0])[1]["top1_error"] == 0.5
    png = plot_attack_errors({"two seeds": paths, "one": str(paths[0])}, str(tmp_path / "e.png"), title="t",
                             dashed={"one"})
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png == str(tmp_path / "e.png")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not a gpumix-attack result"):
        read_results(tmp_path / "bad.json")
