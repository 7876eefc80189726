"""gpumix-label-fit: the memorized-noise shares of a checkpoint, on tiny CIFAR-format folders made here."""
import json
import os

import numpy as np
import pytest
import torch

from gpumix.datasets import STATS
from gpumix.tools.cifar_writer import write_cifar10
from gpumix.train.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
from gpumix.train.label_fit import label_fit, main
from gpumix.train.models import build_model

TRAIN, TEST = 60, 20


def _write_cifar(root, images, labels, test_images, test_labels):
    """The CIFAR-10 binary folder of uint8 (N, 32, 32, 3) HWC images, through the tools' shared writer."""
    def rows(x):
        return x.transpose(0, 3, 1, 2).reshape(len(x), -1)

    write_cifar10(root, labels, rows(images), test_labels, rows(test_images))
    return str(root)


def _predict(model, images):
    x = torch.from_numpy(images).permute(0, 3, 1, 2).double()
    x = (x - torch.tensor(STATS["cifar10"].mean, dtype=torch.float64).view(1, 3, 1, 1)) \
        / torch.tensor(STATS["cifar10"].std, dtype=torch.float64).view(1, 3, 1, 1)
    with torch.no_grad():
        return model.double()(x).argmax(1).numpy()


@pytest.fixture
def run(tmp_path):
    """A seeded resnet18 checkpoint, and noisy/clean folders whose first 30 labels are corrupted so that the
    model fits the noise exactly where its prediction is not the true label."""
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(TRAIN, 32, 32, 3), dtype=np.uint8)
    true = rng.integers(0, 10, size=TRAIN)
    test_images = rng.integers(0, 256, size=(TEST, 32, 32, 3), dtype=np.uint8)
    test_labels = rng.integers(0, 10, size=TEST)
    torch.manual_seed(0)
    model = build_model("resnet18", 10).eval()
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "step": 7, "model": model.state_dict(),
                           "config": {"dataset": "cifar10", "arch": "resnet18", "num_classes": None}})
    pred, test_pred = _predict(model, images), _predict(model, test_images)
    noisy = true.copy()
    noisy[:30] = np.where(pred[:30] != true[:30], pred[:30], (true[:30] + 1) % 10)
    clean = _write_cifar(tmp_path / "clean", images, true, test_images, test_labels)
    noisy_dir = _write_cifar(tmp_path / "noisy", images, noisy, test_images, test_labels)
    return dict(path=path, clean=clean, noisy=noisy_dir, pred=pred, true=true, test_pred=test_pred,
                test_labels=test_labels, images=images)


def test_shares_count_the_noise_the_model_fits(run):
    got = label_fit(run["path"], run["noisy"], run["clean"])
    pred, true = run["pred"], run["true"]
    fit = int((pred[:30] != true[:30]).sum())
    assert 0 < fit < 30  # both kinds occur, so the shares below are not trivially 0 or 1
    assert got["step"] == 7 and got["train_samples"] == TRAIN and got["corrupted"] == 30
    assert got["fits_noise"] == fit / 30
    assert got["true_on_corrupted"] == (30 - fit) / 30
    assert got["train_clean_accuracy"] == float((pred[30:] == true[30:]).mean())
    assert got["test_accuracy"] == float((run["test_pred"] == run["test_labels"]).mean())


def test_command_prints_json(run, capsys):
    assert main([str(run["path"]), "--noisy", run["noisy"], "--clean", run["clean"]]) == 0
    assert json.loads(capsys.readouterr().out) == label_fit(run["path"], run["noisy"], run["clean"])


def test_different_images_are_refused(run, tmp_path):
    other = run["images"].copy()
    other[5, 0, 0, 0] ^= 1
    rng = np.random.default_rng(0)
    moved = _write_cifar(tmp_path / "moved", other, run["true"], other[:TEST], rng.integers(0, 10, TEST))
    assert main([str(run["path"]), "--noisy", moved, "--clean", run["clean"]]) == 1
    with pytest.raises(ValueError, match=r"do not hold the same training images in the same order"):
        label_fit(run["path"], moved, run["clean"])


def test_a_checkpoint_of_another_dataset_or_kind_is_refused(run, tmp_path):
    imagenet = tmp_path / "imagenet.pt"
    save_checkpoint(imagenet, {"format": CHECKPOINT_FORMAT, "model": {},
                               "config": {"dataset": "imagenet", "arch": "resnet18"}})
    with pytest.raises(ValueError, match=r"trained on 'imagenet'; gpumix-label-fit reads CIFAR-format data"):
        label_fit(imagenet, run["noisy"], run["clean"])
    bare = tmp_path / "bare.pt"
    save_checkpoint(bare, {"weights": torch.ones(2)})
    with pytest.raises(ValueError, match=r"is not a gpumix-train checkpoint \(no model and config\)"):
        label_fit(bare, run["noisy"], run["clean"])
    assert not os.path.exists(tmp_path / "missing.pt")
    assert main([str(tmp_path / "missing.pt"), "--noisy", run["noisy"], "--clean", run["clean"]]) == 1
