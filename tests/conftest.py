"""Shared test setup.

NUMBA_ENABLE_CUDASIM=1 is set before anything imports numba, so the exact
CUDA kernel source runs on the CPU simulator. Set GPUMIX_TEST_REAL_CUDA=1 on a
GPU machine to run the real-CUDA tests instead (the simulator tests then skip).
"""
import glob
import os

if os.environ.get("GPUMIX_TEST_REAL_CUDA") != "1":
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

# Error bounds against the float64 reference, as docs/reliability.md states them (relative, plus
# an absolute floor of the same size relative to the largest output value).
TOLERANCE = {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 1e-2}


def pytest_report_header(config):
    return f"NUMBA_ENABLE_CUDASIM={os.environ.get('NUMBA_ENABLE_CUDASIM', '0')}"


@pytest.fixture
def make_case():
    """Return ``make(B, H, W, C, K, seed, boxes=True)``: a fresh random batch with random mix parameters."""
    from gpumix import MixParams

    def make(n, height, width, channels, num_classes, seed, boxes=True):
        g = torch.Generator().manual_seed(seed)
        batch = torch.randint(0, 256, (n, height, width, channels), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, num_classes, (n,), generator=g)
        lam = torch.rand(n, generator=g).to(torch.float32)
        index = torch.randperm(n, generator=g)
        box = None
        if boxes:
            y = torch.sort(torch.randint(0, height + 1, (n, 2), generator=g), dim=1).values
            x = torch.sort(torch.randint(0, width + 1, (n, 2), generator=g), dim=1).values
            box = torch.stack([y[:, 0], x[:, 0], y[:, 1], x[:, 1]], dim=1).to(torch.int32)
            box[0] = 0  # at least one sample is plain mixup
        mean = (torch.rand(channels, generator=g) * 100 + 70).tolist()
        std = (torch.rand(channels, generator=g) * 50 + 20).tolist()
        return batch, labels, MixParams(lam, index, box), mean, std

    return make


@pytest.fixture
def assert_matches_reference():
    """Check fused outputs against the float64 reference within the dtype's bound."""

    def check(images, targets, clean, ref_images, ref_targets, ref_clean, dtype):
        tol = TOLERANCE[dtype]
        assert images.dtype == dtype and images.shape == ref_images.shape
        for got, ref in ((images, ref_images), (clean, ref_clean)):
            if got is None:
                continue
            assert torch.isfinite(got.float()).all()
            scale = max(1.0, float(ref.abs().max()))
            torch.testing.assert_close(got.double(), ref, rtol=tol, atol=tol * scale)
        torch.testing.assert_close(targets.double(), ref_targets, rtol=1e-6, atol=1e-7)

    return check


@pytest.fixture
def launch_poisoned():
    """Return ``run(kernel_module, batch, labels, params, mean, std, K, eps, dtype, channels_last, clean)``.

    It calls the module's ``launch`` directly, on output buffers filled with
    NaN first, so any element the kernel fails to write shows up.
    """
    from gpumix._alloc import empty_output
    from gpumix.kernels import arith

    def run(module, batch, labels, params, mean, std, num_classes, eps, dtype, channels_last, with_clean):
        n, height, width, channels = batch.shape
        shape = (n, channels, height, width)
        images = empty_output(shape, dtype, batch.device, channels_last).fill_(float("nan"))
        clean = empty_output(shape, dtype, batch.device, channels_last).fill_(float("nan")) if with_clean else None
        targets = torch.full((n, num_classes), float("nan"))
        boxes = params.boxes if params.boxes is not None else torch.zeros((n, 4), dtype=torch.int32)
        enc = {torch.float32: arith.ENC_F32, torch.float16: arith.ENC_F16, torch.bfloat16: arith.ENC_BF16}[dtype]

        def raw(t):
            return t if t is None or dtype == torch.float32 else t.view(torch.int16)

        module.launch(batch, labels.to(torch.int64), params.lam, params.index, boxes,
                      torch.tensor(mean, dtype=torch.float32), 1 / torch.tensor(std, dtype=torch.float32),
                      eps, enc, raw(images), targets, raw(clean))
        return images, targets, clean

    return run


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    """Paths of small synthetic datasets made once per session.

    imagenet: a class-folder root (3 classes x 5 images of 40x56); file_list:
    the same images as a DALI file list; unique_list: the same images, each
    with its own label 0..14 (so labels identify samples); webdataset: shards
    of the same kind of set; cifar10/100-binary/python: 4 images per class.
    """
    from gpumix.synthetic import make_dataset

    root = tmp_path_factory.mktemp("data")
    found = {"imagenet": make_dataset("imagenet", root / "imagenet", classes=3, images_per_class=5, seed=1,
                                      size=(40, 56))}
    rows = []
    for label, cls in enumerate(sorted(os.listdir(found["imagenet"]))):
        for f in sorted(os.listdir(os.path.join(found["imagenet"], cls))):
            rows.append(f"{cls}/{f} {label}\n")
    found["file_list"] = os.path.join(found["imagenet"], "files.txt")
    with open(found["file_list"], "w") as f:
        f.writelines(rows)
    found["unique_list"] = os.path.join(found["imagenet"], "unique.txt")
    with open(found["unique_list"], "w") as f:
        f.writelines(f"{row.split()[0]} {i}\n" for i, row in enumerate(rows))
    wds = make_dataset("webdataset", root / "wds", classes=3, images_per_class=5, seed=1, size=(40, 56))
    found["webdataset"] = sorted(glob.glob(os.path.join(wds, "*.tar")))
    for name in ("cifar10", "cifar100"):
        for fmt in ("binary", "python"):
            classes = 10 if name == "cifar10" else 20
            found[f"{name}-{fmt}"] = make_dataset(name, root / f"{name}-{fmt}", classes=classes, images_per_class=4,
                                                  seed=2, cifar_format=fmt)
    return found


def _real_photographs():
    """{name: uint8 (H, W, 3)}: the photographs that ship inside scikit-image and scikit-learn (the test extra)."""
    skimage_data = pytest.importorskip("skimage.data")
    datasets_module = pytest.importorskip("sklearn.datasets")
    photos = {name: getattr(skimage_data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket")}
    china, flower = datasets_module.load_sample_images().images
    photos.update(china=china, flower=flower)
    return photos


@pytest.fixture(scope="session")
def photos(tmp_path_factory):
    """Small datasets of crops of real photographs, written as JPEGs (quality 90), made once per session.

    folder: a class-folder root of 4 classes (astronaut, chelsea, china,
    coffee) x 5 random crops of 64-200 pixels a side = 20 images; files: its
    20 paths in the order of ``unique_list``; unique_list: a file list in the
    root giving image ``i`` the label ``i`` (labels identify samples);
    webdataset: 4 shards of 5 samples, the same 20 crops in the same order,
    ``.cls`` = ``i``; full: whole photographs (astronaut 512x512, coffee
    400x600, china and flower 427x640, rocket 427x640) as JPEGs.
    """
    from gpumix.synthetic import write_webdataset

    pictures = _real_photographs()
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(14)
    samples, files = [], []
    for name in ("astronaut", "chelsea", "china", "coffee"):
        os.makedirs(root / "folder" / name)
        picture = pictures[name]
        for k in range(5):
            h, w = (int(v) for v in rng.integers(64, 201, 2))
            y, x = int(rng.integers(0, picture.shape[0] - h + 1)), int(rng.integers(0, picture.shape[1] - w + 1))
            crop = np.ascontiguousarray(picture[y:y + h, x:x + w])
            path = root / "folder" / name / f"{name}_{k}.jpg"
            Image.fromarray(crop).save(path, quality=90)
            samples.append((len(samples), len(samples), crop))
            files.append(str(path))
    found = {"folder": str(root / "folder"), "files": files,
             "unique_list": str(root / "folder" / "unique.txt")}
    with open(found["unique_list"], "w") as f:
        f.writelines(f"{os.path.relpath(p, found['folder'])} {i}\n" for i, p in enumerate(files))
    os.makedirs(root / "wds")
    found["webdataset"] = write_webdataset(str(root / "wds"), samples, shard_size=5)
    os.makedirs(root / "full")
    found["full"] = []
    for name in ("astronaut", "coffee", "china", "flower", "rocket"):
        Image.fromarray(pictures[name]).save(root / "full" / f"{name}.jpg", quality=90)
        found["full"].append(str(root / "full" / f"{name}.jpg"))
    return found
