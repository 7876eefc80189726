"""Odd and broken files in an ImageNet folder: decoded as Pillow's RGB where the format allows, named otherwise.

ImageNet's train set holds a PNG named .JPEG, CMYK JPEGs and grayscale
JPEGs. They decode (as do PNGs with alpha or a palette, and progressive JPEGs)
to the same 3-channel RGB uint8 as Pillow's ``convert("RGB")``. Truncated,
empty and random-byte files cannot: gpumix-scan
reports each by path before a run, and a run (``pipe.run()`` or a
``MixupIterator``) stops with a ``DatasetFileError`` that names the file. The
failing runs happen in a subprocess with a timeout, so a hang fails the test
instead of blocking it.
"""
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gpumix.pipelines import imagenet_train, imagenet_val
from gpumix.synthetic import make_dataset
from gpumix.tools import scan


def _encode(img, fmt, **kwargs):
    out = io.BytesIO()
    img.save(out, format=fmt, **kwargs)
    return out.getvalue()


def _picture(seed, height=40, width=48):
    """A smooth RGB picture with noise: every channel differs, so a channel mix-up shows."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = np.stack([xx * 5, yy * 6, (xx + yy) * 3], axis=-1) + rng.integers(-20, 20, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


# Decodable files that are not plain RGB JPEGs: (file name, encoded bytes from an RGB picture).
ODD = {
    "png_named.JPEG": lambda img: _encode(img, "PNG"),
    "rgba_png_named.JPEG": lambda img: _encode(img.convert("RGBA"), "PNG"),
    "palette_png_named.JPEG": lambda img: _encode(img.convert("P"), "PNG"),
    "cmyk.JPEG": lambda img: _encode(img.convert("CMYK"), "JPEG", quality=90),
    "gray.JPEG": lambda img: _encode(img.convert("L"), "JPEG", quality=90),
    "progressive.JPEG": lambda img: _encode(img, "JPEG", quality=90, progressive=True),
    "plain.jpg": lambda img: _encode(img, "JPEG", quality=90),
}
# Undecodable files: (file name, bytes from a good JPEG) and the reason gpumix-scan gives (a regex: Pillow's
# words for a truncated JPEG depend on where the cut falls).
BROKEN = {
    "truncated.JPEG": (lambda good: good[: len(good) // 2], r"OSError: (image file is truncated|Truncated File Read)"),
    "header_only.JPEG": (lambda good: good[:400], r"OSError: Truncated File Read"),
    "empty.JPEG": (lambda good: b"", r"empty file"),
    "random.jpg": (lambda good: np.random.default_rng(7).integers(0, 256, 3000, dtype=np.uint8).tobytes(),
                   r"UnidentifiedImageError: not an image format Pillow can identify"),
}


def _pillow_rgb(data):
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


@pytest.fixture(scope="module")
def odd_folders(tmp_path_factory):
    """A class folder of the ODD files, and its twin holding Pillow's RGB of each as a lossless PNG."""
    root = tmp_path_factory.mktemp("odd")
    encoded = {}
    for i, (name, encode) in enumerate(ODD.items()):
        encoded[name] = encode(_picture(i))
        for folder, data in (("odd", encoded[name]), ("twin", _encode(Image.fromarray(_pillow_rgb(encoded[name])),
                                                                      "PNG"))):
            os.makedirs(root / folder / "c0", exist_ok=True)
            (root / folder / "c0" / name).write_bytes(data)
    return root / "odd", root / "twin", encoded


def _outputs(pipe):
    pipe.build()
    images, _ = pipe.run()
    return {os.path.basename(images[i].source_info()): np.array(images[i]) for i in range(len(images))}


def test_odd_formats_decode_exactly_as_pillows_rgb(odd_folders):
    folder, _, encoded = odd_folders
    # shorter side 40 -> 40 and a 40x40 center crop: the decoded pixels, columns 4..43 of the 48
    got = _outputs(imagenet_val(str(folder), batch_size=len(ODD), crop=40, resize=40, device="cpu", num_threads=1))
    assert sorted(got) == sorted(ODD)
    for name, data in encoded.items():
        want = _pillow_rgb(data)[:, 4:44]
        assert got[name].shape == (40, 40, 3) and got[name].dtype == np.uint8
        assert np.array_equal(got[name], want), f"{name}: max difference {np.abs(got[name] - want.astype(int)).max()}"


@pytest.mark.parametrize("builder, kwargs", [(imagenet_train, dict(crop=24)), (imagenet_val, dict(crop=24,
                                                                                                  resize=28))],
                         ids=["train", "val"])
def test_odd_formats_go_through_the_pipelines_like_their_rgb_png(odd_folders, builder, kwargs):
    """Same seed, same crops: each odd file gives exactly what a lossless PNG of Pillow's RGB gives."""
    folder, twin, _ = odd_folders
    got, want = (_outputs(builder(str(f), batch_size=len(ODD), device="cpu", num_threads=1, seed=3, **kwargs))
                 for f in (folder, twin))
    for name in ODD:
        assert np.array_equal(got[name], want[name]), name


def _dataset_with(root, name, data):
    """A 2-class x 4-image dataset whose second class holds one file ``name`` with ``data``; returns its path."""
    make_dataset("imagenet", root, classes=2, images_per_class=4, seed=1, size=(40, 48))
    victim = sorted((root / "class_0001").iterdir())[1]
    good = victim.read_bytes()
    victim.unlink()
    (root / "class_0001" / name).write_bytes(data(good) if callable(data) else data)
    return root / "class_0001" / name


def test_scan_reports_exactly_the_broken_files(tmp_path, odd_folders, capsys):
    root = tmp_path / "d"
    make_dataset("imagenet", root, classes=2, images_per_class=2, seed=1, size=(40, 48))
    good = sorted(root.rglob("*.JPEG"))[0].read_bytes()
    for name, data in odd_folders[2].items():
        (root / "class_0000" / name).write_bytes(data)
    for name, (damage, _) in BROKEN.items():
        (root / "class_0001" / name).write_bytes(damage(good))
    assert scan.main([str(root), "--workers", "2"]) == 1
    report = capsys.readouterr().out
    bad_lines = [line for line in report.splitlines() if line.startswith("BAD ")]
    assert len(bad_lines) == len(BROKEN), report
    for name, (_, why) in BROKEN.items():
        line = next(line for line in bad_lines if line.startswith(f"BAD {root / 'class_0001' / name}: "))
        assert re.search(why, line) and "0x" not in line, line
    total = 4 + len(ODD) + len(BROKEN)
    assert f"scanned {total} images: {total - len(BROKEN)} good, {len(BROKEN)} bad" in report


# The failing runs, each in a fresh process that must end within the timeout.
_RUNNER = r"""
import json, sys
from gpumix import Mixup, MixupIterator
from gpumix.pipelines import DatasetFileError, imagenet_train, imagenet_val

results = {}
for kind, root in json.loads(sys.argv[1]).items():
    results[kind] = {}
    for how in ("train-run", "val-run", "iterator"):
        try:
            builder = imagenet_val if how == "val-run" else imagenet_train
            pipe = builder(root, batch_size=3, crop=16, device="cpu", num_threads=1)
            if how == "iterator":
                loader = MixupIterator(pipe, Mixup(num_classes=2, seed=0), mean=[120.0] * 3, std=[60.0] * 3)
                for _ in range(2):
                    for batch in loader:
                        pass
            else:
                pipe.build()
                for _ in range(6):
                    pipe.run()
            results[kind][how] = None
        except DatasetFileError as e:
            results[kind][how] = str(e)
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def broken_runs(tmp_path_factory):
    """{kind: {"train-run" | "val-run" | "iterator": the DatasetFileError's message}} and the broken paths."""
    base = tmp_path_factory.mktemp("broken")
    roots, paths = {}, {}
    for name, (damage, _) in BROKEN.items():
        roots[name] = str(base / name)
        paths[name] = _dataset_with(base / name, name, damage)
    out = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(roots)], capture_output=True, text=True,
                         timeout=240, cwd=base)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1]), paths


@pytest.mark.parametrize("name", sorted(BROKEN))
@pytest.mark.parametrize("how", ["train-run", "val-run", "iterator"])
def test_a_broken_file_stops_the_run_with_its_name(broken_runs, name, how):
    results, paths = broken_runs
    message = results[name][how]
    assert message is not None, f"{name}: {how} ran without an error"
    if name == "empty.JPEG":  # DALI's reader cannot map an empty file, and names its path
        assert message.startswith(f"DALI could not read a file of the dataset: empty file {paths[name]}.")
    else:
        assert message.startswith(f"DALI could not decode class_0001/{name} (") and re.search(BROKEN[name][1], message)
    assert message.endswith("The pipeline is no longer valid: rebuild it, and clean the dataset first with "
                            "gpumix-scan.")
    assert "0x" not in message  # no object addresses

