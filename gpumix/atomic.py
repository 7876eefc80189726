"""gpumix's one atomic writer: every file a crash could leave half-written goes through it.

The data goes to a temporary file in the target's own folder
(``.<name>.<random>.tmp``, so the rename never crosses file systems), which is
flushed and fsynced, renamed over the target, and the folder is fsynced. The
target therefore holds either its previous content or all of the new one. An
OSError (a full disk, a missing folder) is raised with its errno and a message
``writing <what><path>: ...``, and the temporary file is removed.
"""
import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterator
from typing import IO

__all__ = ["atomic_writer", "write_atomically", "remove_partial_writes"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: str) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, what: str = "", *, text: bool = False) -> Iterator[IO]:
    """A file to write ``path``'s new content to (binary, or UTF-8 text with ``text=True``); committed on exit.

    If the block raises, ``path`` is left as it was and the temporary file is
    removed; an OSError is re-raised naming ``what`` and ``path``. The file
    gets the permissions a plain ``open`` would give (not mkstemp's 0600).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    temp = None
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
        with (os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb")) as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o666 & ~_current_umask())
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
        temp = None
        _fsync_directory(directory)
    except OSError as e:
        code = e.errno if e.errno is not None else errno.EIO
        raise OSError(code, f"writing {what}{path}: {e.strerror or e}") from e
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.remove(temp)


def write_atomically(path: str | os.PathLike, data: str | bytes, what: str = "") -> None:
    """Replace ``path`` with ``data`` (str as UTF-8, or bytes) atomically; errors as ``atomic_writer``'s."""
    with atomic_writer(path, what, text=isinstance(data, str)) as f:
        f.write(data)


def remove_partial_writes(path: str | os.PathLike) -> list[str]:
    """Delete the temporary files a killed ``atomic_writer(path)`` left beside ``path``; the removed paths, sorted.

    They are named ``.<name>.<random>.tmp``; ``path`` itself is never touched.
    Call it only while nothing else writes ``path``.
    """
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    pattern = re.compile(r"\." + re.escape(name) + r"\.[^/]+\.tmp")
    removed = []
    if os.path.isdir(directory):
        for entry in sorted(os.listdir(directory)):
            if pattern.fullmatch(entry):
                os.remove(os.path.join(directory, entry))
                removed.append(os.path.join(directory, entry))
    return removed
