"""Small durable file-system helpers, and opening only regular files that are really there.

Every file of the log is opened without following a symbolic link (``O_NOFOLLOW``) and without
blocking (``O_NONBLOCK``: a FIFO would otherwise hang the reader), then checked with ``fstat`` to
be a regular file. A link to an identical copy elsewhere, a FIFO, a device or a directory in the
place of a log file is refused by name, never followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from cellblock.audit._errors import LogCorruptedError

_SAFE = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class NotRegularFileError(LogCorruptedError):
    """A log file (or the quarantine directory) is a link, FIFO, device or the wrong kind."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(
            f"{path} {what}; the audit log uses only regular files inside its directory "
            "(no links): run 'cellblock audit verify' and restore the file"
        )
        self.path = Path(path)
        self.what = what


def _kind(mode: int) -> str:
    for test, what in (
        (stat.S_ISLNK, "is a symbolic link"),
        (stat.S_ISFIFO, "is a FIFO"),
        (stat.S_ISSOCK, "is a socket"),
        (stat.S_ISCHR, "is a character device"),
        (stat.S_ISBLK, "is a block device"),
        (stat.S_ISDIR, "is a directory"),
    ):
        if test(mode):
            return what
    return "is not a regular file"


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """Open ``path`` only if it is itself a regular file; raise NotRegularFileError otherwise."""
    try:
        fd = os.open(path, flags | _SAFE, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ENODEV):
            try:
                what = _kind(os.lstat(path).st_mode)
            except OSError:
                what = "is not a regular file"
            raise NotRegularFileError(path, what) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularFileError(path, _kind(st.st_mode))
    return fd


def read_regular(path: Path) -> bytes:
    """The whole content of a regular file (see :func:`open_regular`)."""
    fd = open_regular(path)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def check_real_dir(path: Path) -> None:
    """Raise NotRegularFileError unless ``path`` is a directory itself (not a link to one)."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise NotRegularFileError(path, _kind(st.st_mode) + " where a directory belongs")


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (creates, renames, unlinks) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename (no torn files).

    The temporary file is created fresh (``O_EXCL``, no link followed); the rename replaces
    whatever was at ``path``, a link included, without following it.
    """
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # a leftover of a crashed writer with our pid, or something planted
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
