"""File lists (issue 14, part 1): one convention for every builder, wherever the list is written.

Relative paths are relative to the list's own folder, absolute ones are kept;
``gpumix-scan --output`` writes lists by that rule, so its list feeds the
pipelines from any folder. A listed file that does not exist is reported as
missing, by its path. Data: crops of real photographs (the ``photos`` fixture).
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from gpumix.file_list import format_file_list, read_file_list
from gpumix.pipelines import imagenet_train, imagenet_val
from gpumix.tools import scan


def _epoch(builder, data, total=20, batch=8):
    """(absolute paths, labels) of one epoch of a 1-shard pipeline (padding dropped).

    DALI's source info is the path as the list writes it: joined to the list's folder here.
    """
    pipe = builder(data, batch_size=batch, crop=32, device="cpu", num_threads=1, seed=3)
    pipe.build()
    paths, labels = [], []
    while len(paths) < total:
        images, y = pipe.run()
        y = np.array(y.as_tensor()).ravel()
        for i in range(min(len(images), total - len(paths))):
            paths.append(os.path.normpath(os.path.join(os.path.dirname(data), images[i].source_info())))
            labels.append(int(y[i]))
    return paths, labels


def _expected(photos):
    classes = sorted(os.listdir(photos["folder"]))
    return {p: classes.index(os.path.basename(os.path.dirname(p))) for p in photos["files"]}


@pytest.mark.parametrize("where", ["outside", "inside", "subfolder"])
@pytest.mark.parametrize("builder", [imagenet_train, imagenet_val])
def test_a_scanned_list_feeds_the_pipelines_wherever_it_is_written(photos, tmp_path, capsys, where, builder):
    folder = os.path.join(str(tmp_path), "data")
    shutil.copytree(photos["folder"], folder)
    os.remove(os.path.join(folder, "unique.txt"))
    output = {"outside": tmp_path / "lists" / "clean.txt", "inside": os.path.join(folder, "clean.txt"),
              "subfolder": os.path.join(folder, "astronaut", "clean.txt")}[where]
    os.makedirs(os.path.dirname(output), exist_ok=True)
    assert scan.main([folder, "--output", str(output), "--workers", "1"]) == 0
    assert "scanned 20 images: 20 good, 0 bad" in capsys.readouterr().out
    names = [line.rpartition(" ")[0] for line in open(output).read().splitlines()]
    if where == "outside":  # no image under the list's folder: absolute paths
        assert all(os.path.isabs(n) for n in names)
    elif where == "inside":
        assert all(not os.path.isabs(n) and not n.startswith("..") for n in names)
    else:  # the astronaut crops are under the list's folder, the others are not
        assert sorted(os.path.isabs(n) for n in names) == [False] * 5 + [True] * 15
    paths, labels = _epoch(builder, str(output))
    want = {p.replace(photos["folder"], folder): y for p, y in _expected(photos).items()}
    assert sorted(paths) == sorted(want) and [want[p] for p in paths] == labels


@pytest.mark.parametrize("style", ["relative-from-another-folder", "absolute"])
def test_hand_written_lists_relative_to_their_folder_or_absolute(photos, tmp_path, style):
    lists = tmp_path / "elsewhere" / "lists"
    lists.mkdir(parents=True)
    rows = []
    for i, path in enumerate(photos["files"]):
        rows.append(f"{os.path.relpath(path, lists) if style != 'absolute' else path} {i}\n")
    (lists / "train.txt").write_text("".join(rows))
    if style != "absolute":
        assert rows[0].startswith("..")
    paths, labels = _epoch(imagenet_val, str(lists / "train.txt"))
    assert sorted(paths) == sorted(photos["files"])
    assert [photos["files"].index(p) for p in paths] == labels


def test_scanning_a_list_resolves_it_by_the_same_rule(photos, tmp_path, capsys):
    (tmp_path / "b").mkdir()
    assert scan.main([photos["unique_list"], "--output", str(tmp_path / "b" / "again.txt"), "--workers", "1"]) == 0
    assert read_file_list(str(tmp_path / "b" / "again.txt")) == (photos["files"], list(range(20)))


def test_format_then_read_round_trips(tmp_path):
    files = [str(tmp_path / "a b" / "x.jpg"), "/elsewhere/y.JPEG", str(tmp_path / "z.png")]
    text = format_file_list(str(tmp_path / "list.txt"), files, [3, 1, 2])
    assert text == "a b/x.jpg 3\n/elsewhere/y.JPEG 1\nz.png 2\n"  # a space in a path survives
    (tmp_path / "list.txt").write_text(text)
    assert read_file_list(str(tmp_path / "list.txt")) == (files, [3, 1, 2])


def test_a_bad_line_is_named_by_path_and_number(tmp_path):
    (tmp_path / "list.txt").write_text("a.jpg 0\n\nb.jpg two\n")
    with pytest.raises(ValueError, match=r"list.txt:3: expected '<path> <label>', got 'b.jpg two'"):
        imagenet_train(str(tmp_path / "list.txt"), batch_size=2, device="cpu")


def test_scan_reports_a_listed_file_that_does_not_exist(photos, tmp_path, capsys):
    (tmp_path / "list.txt").write_text(f"{photos['files'][0]} 0\nnot_here.jpg 1\n")
    assert scan.main([str(tmp_path / "list.txt"), "--workers", "1"]) == 1
    assert f"BAD {tmp_path}/not_here.jpg: missing: the file does not exist" in capsys.readouterr().out


_RUNNER = r"""
import sys
from gpumix.pipelines import DatasetFileError, imagenet_val
pipe = imagenet_val(sys.argv[1], batch_size=4, crop=16, device="cpu", num_threads=1)
pipe.build()
try:
    for _ in range(6):
        pipe.run()
    print("no error")
except DatasetFileError as e:
    print(e)
"""


@pytest.mark.parametrize("absolute", [False, True])
def test_a_missing_file_is_reported_as_missing_by_its_path(photos, tmp_path, absolute):
    """In a subprocess with a timeout: a DALI failure must not hang the suite."""
    lists = tmp_path / "lists"
    lists.mkdir()
    missing = str(tmp_path / "gone" / "n00000001" / "img_1_2.JPEG")
    rows = [f"{p} 0" for p in photos["files"][:6]]
    rows.insert(3, f"{missing if absolute else os.path.relpath(missing, lists)} 1")
    (lists / "list.txt").write_text("\n".join(rows) + "\n")
    out = subprocess.run([sys.executable, "-c", _RUNNER, str(lists / "list.txt")], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith(f"DALI could not read a file of the dataset: missing file {missing} (it does not "
                                 "exist). The pipeline is no longer valid"), out.stdout


def test_spaces_blank_lines_and_crlf_as_the_list_reader_reads_them(photos, tmp_path):
    """DALI's reader (which the pipelines hand the list) and read_file_list agree on the format's corners."""
    (tmp_path / "with space").mkdir()
    shutil.copy(photos["files"][0], tmp_path / "with space" / "a b.jpg")
    shutil.copy(photos["files"][1], tmp_path / "c.jpg")
    (tmp_path / "list.txt").write_bytes(f"with space/a b.jpg 7\r\n\n   \n{tmp_path}/c.jpg 9\n".encode())
    assert read_file_list(str(tmp_path / "list.txt")) == (
        [str(tmp_path / "with space" / "a b.jpg"), str(tmp_path / "c.jpg")], [7, 9])
    paths, labels = _epoch(imagenet_val, str(tmp_path / "list.txt"), total=2, batch=2)
    assert paths == [str(tmp_path / "with space" / "a b.jpg"), str(tmp_path / "c.jpg")] and labels == [7, 9]
