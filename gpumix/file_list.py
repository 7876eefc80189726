"""The DALI file list, gpumix's one reader and writer of the format.

A file list is a text file of one ``path label`` line per image (UTF-8; the
label is the last space-separated field, so a path may hold spaces; blank
lines are skipped). The convention, the same for every gpumix builder,
``gpumix-train``, ``gpumix-bench`` and ``gpumix-scan``:

- a relative path is relative to the folder that holds the list itself;
- an absolute path is used as it is.

So a list can be written anywhere: ``gpumix-scan DIR --output LIST`` writes
paths relative to LIST's folder for the images under it, and absolute paths
for the others. The pipelines give DALI the list itself with ``file_root``
set to the list's folder: DALI's reader joins a relative path to
``file_root``, keeps an absolute one, splits a line at its last space and
skips blank lines, which is this convention (tests/pipelines/test_file_list.py
checks it), and reads a 1.28M-line list without holding it in Python.
"""
import os
from collections.abc import Iterable

__all__ = ["read_file_list", "format_file_list", "check_file_list"]


def _parse(path, number, line):
    """(name, label) of one non-blank line; a ValueError naming ``path:number`` otherwise."""
    name, _, label = line.strip().rpartition(" ")
    if not name.strip() or not label.lstrip("-").isdigit():
        raise ValueError(f"data: {path}:{number}: expected '<path> <label>', got {line.strip()!r}")
    return name.strip(), int(label)


def check_file_list(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Validate the file list at ``path`` line by line without keeping it: (images, largest label).

    Errors are ``read_file_list``'s.
    """
    count, largest = 0, None
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                label = _parse(path, number, line)[1]
                count += 1
                largest = label if largest is None else max(largest, label)
    if largest is None:
        raise ValueError(f"data: the file list {path} is empty")
    return count, largest


def read_file_list(path: str | os.PathLike[str]) -> tuple[list[str], list[int]]:
    """The images of the file list at ``path``: (absolute paths, int labels), in the list's order.

    Relative paths are joined to the list's folder (absolute). Nothing is
    opened but the list: a listed file that does not exist is reported when a
    pipeline reaches it. A line without a path and an integer label raises a
    ValueError naming ``path:line``; a list with no lines a ValueError naming
    it (both start with ``data: ``, the builders' argument).
    """
    path = os.fspath(path)
    root = os.path.dirname(os.path.abspath(path))
    files, labels = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                name, label = _parse(path, number, line)
                files.append(os.path.normpath(os.path.join(root, name)))
                labels.append(label)
    if not files:
        raise ValueError(f"data: the file list {path} is empty")
    return files, labels


def format_file_list(path: str | os.PathLike[str], files: Iterable[str | os.PathLike[str]],
                     labels: Iterable[int]) -> str:
    """The text of a file list to be written at ``path``, for absolute ``files`` and int ``labels``.

    A file under the list's folder is written relative to it; any other file
    keeps its absolute path (no ``..``), so the list stays valid when it and
    its folder are moved together. ``read_file_list`` of the written list
    returns ``files`` (normalized) and ``labels``.
    """
    root = os.path.dirname(os.path.abspath(os.fspath(path)))
    lines = []
    for file, label in zip(files, labels, strict=True):
        file = os.path.normpath(os.path.abspath(file))
        relative = os.path.relpath(file, root)
        name = file if relative == os.pardir or relative.startswith(os.pardir + os.sep) else relative
        if "\n" in name or "\r" in name:
            raise ValueError(f"files: a path with a line break cannot go in a file list: {name!r}")
        lines.append(f"{name} {int(label)}\n")
    return "".join(lines)
