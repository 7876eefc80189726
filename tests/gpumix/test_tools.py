"""gpumix-make-dataset and gpumix-scan: outputs, exit codes, and nothing partial on failure."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gpumix import synthetic as maker
from gpumix.tools import scan


def test_natural_looking_imagenet_sized_jpegs(tmp_path):
    out = maker.make_dataset("imagenet", tmp_path / "d", classes=2, images_per_class=2, seed=0)
    files = sorted(p for p in (tmp_path / "d").rglob("*.JPEG"))
    assert len(files) == 4 and sorted(os.listdir(out)) == ["class_0000", "class_0001"]
    for f in files:
        with Image.open(f) as img:
            w, h = img.size
            assert img.format == "JPEG" and 260 <= h <= 440 and 300 <= w <= 500
        # smooth content compresses far below white noise (about 3 bytes per pixel at quality 90)
        assert f.stat().st_size / (w * h) < 1.0


def test_webdataset_shards_have_indexes(tmp_path):
    maker.make_dataset("webdataset", tmp_path / "w", classes=2, images_per_class=3, size=(16, 16))
    assert sorted(os.listdir(tmp_path / "w")) == ["shard-000000.idx", "shard-000000.tar"]
    assert (tmp_path / "w" / "shard-000000.idx").read_text().startswith("v1.2 6")


def test_refuses_a_non_empty_output_and_leaves_nothing_on_error(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError, match=r"output: .*full exists and is not an empty folder"):
        maker.make_dataset("imagenet", tmp_path / "full", classes=2, images_per_class=1)
    with pytest.raises(ValueError, match=r"classes must be <= 10 for cifar10, got 11"):
        maker.make_dataset("cifar10", tmp_path / "c", classes=11, images_per_class=1)
    assert sorted(os.listdir(tmp_path)) == ["full"]


def test_cli_help_and_error_exit_codes(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "gpumix.tools.make_dataset", "--help"], capture_output=True,
                        text=True, cwd=tmp_path)
    assert ok.returncode == 0 and "--format" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "gpumix.tools.make_dataset", "--format", "cifar10", "--classes",
                          "1", "--output", str(tmp_path / "o")], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 1 and "classes must be an int >= 2, got 1" in bad.stderr


def test_scan_reports_bad_files_and_writes_a_clean_list(tmp_path, capsys):
    root = maker.make_dataset("imagenet", tmp_path / "d", classes=2, images_per_class=4, size=(40, 40))
    files = sorted((tmp_path / "d").rglob("*.JPEG"))
    files[0].write_bytes(files[0].read_bytes()[:300])  # truncated
    files[1].write_bytes(b"")  # empty
    files[5].write_bytes(np.random.default_rng(0).integers(0, 256, 999, dtype=np.uint8).tobytes())
    png = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(png, format="PNG")
    files[6].write_bytes(png.getvalue())  # a PNG named .JPEG decodes: it is fine
    out = tmp_path / "d" / "clean.txt"
    assert scan.main([root, "--output", str(out), "--workers", "2"]) == 1
    report = capsys.readouterr().out
    for bad in (files[0], files[1], files[5]):
        assert f"BAD {bad}" in report
    assert "8 images: 5 good, 3 bad" in report
    listed = out.read_text().split("\n")[:-1]
    assert len(listed) == 5 and all(not line.startswith(str(files[i].relative_to(root))) for line in listed
                                    for i in (0, 1, 5))
    # the clean list feeds the pipeline
    from gpumix.pipelines import imagenet_val
    pipe = imagenet_val(str(out), batch_size=5, crop=16, device="cpu", num_threads=1)
    pipe.build()
    assert len(pipe.run()[0]) == 5


def test_scan_exit_codes_for_clean_and_missing_data(tmp_path, capsys):
    root = maker.make_dataset("imagenet", tmp_path / "d", classes=2, images_per_class=2, size=(16, 16))
    assert scan.main([root]) == 0
    assert scan.main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
