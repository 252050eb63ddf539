"""Reading the files a person names on the command line: regular files only.

A FIFO, a device or a directory named as a program (or reached through a symlink) would block
forever, read without end or fail obscurely. The check is made on the open descriptor, so a file
swapped for a FIFO between a check and the open cannot slip through: ``stat`` first refuses the
obvious cases without opening anything (opening some devices has side effects), then the file is
opened with ``O_NONBLOCK`` (opening a FIFO then returns at once instead of waiting for a writer)
and ``fstat`` decides.
"""

from __future__ import annotations

import errno
import os
import stat


class NotRegularFileError(OSError):
    """The path names something other than a regular file; ``strerror`` says what it is."""

    def __init__(self, kind: str) -> None:
        super().__init__(errno.EINVAL, f"it is {kind}, not a regular file")


def _kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks to regular files are fine).

    Raises :class:`NotRegularFileError` for anything else, or the ``OSError`` of the failed call.
    """
    kind = _kind(os.stat(path).st_mode)
    if kind is not None:
        raise NotRegularFileError(kind)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        kind = _kind(os.fstat(fd).st_mode)  # the file actually opened decides
        if kind is not None:
            raise NotRegularFileError(kind)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as file:
            return file.read()
    finally:
        os.close(fd)
