"""gpumix.atomic: whole or unchanged, errors naming the file, no temporary left behind."""
import errno
import os

import pytest

from gpumix import atomic
from gpumix.atomic import atomic_writer, remove_partial_writes, write_atomically


def test_text_and_bytes_replace_the_file(tmp_path):
    target = tmp_path / "out.json"
    write_atomically(target, "first\n")
    write_atomically(target, b"\x00second")
    assert target.read_bytes() == b"\x00second"
    assert os.listdir(tmp_path) == ["out.json"]


def test_a_failing_block_leaves_the_old_content_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_writer(target, text=True) as f:
            f.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]


def test_a_full_disk_is_an_oserror_naming_the_file(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    target = tmp_path / "out.txt"
    with pytest.raises(OSError, match=f"writing the list {target}: No space left") as caught:
        write_atomically(target, "x", "the list ")
    assert caught.value.errno == errno.ENOSPC
    assert not target.exists() and os.listdir(tmp_path) == []


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        write_atomically(tmp_path / "missing" / "out.txt", "x")


def test_the_file_gets_the_umask_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        write_atomically(tmp_path / "out.txt", "x")
    finally:
        os.umask(mask)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644


def test_remove_partial_writes_takes_only_temporaries_of_that_name(tmp_path):
    target = tmp_path / "a.pt"
    partial = [tmp_path / ".a.pt.x1y2.tmp", tmp_path / ".a.pt.zz.tmp"]
    kept = [target, tmp_path / ".b.pt.x1.tmp", tmp_path / "a.pt.tmp"]
    for p in partial + kept:
        p.write_bytes(b"")
    assert remove_partial_writes(target) == sorted(str(p) for p in partial)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in kept)
