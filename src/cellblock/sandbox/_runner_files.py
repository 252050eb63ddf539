"""cellblock's in-container file handling: inputs in, artifacts out. Standard library only.

Copied into the image as ``cellblock_runner_files.py`` next to the runner. Every file operation
runs in a process that is the sandbox user (never the runner's root), so it can do nothing the
program could not do itself; what it reads is treated as hostile:

* names: relative, no ``..``, no empty or absolute parts, no control characters, valid UTF-8;
* only regular files are collected: opened with ``O_NOFOLLOW | O_NONBLOCK`` relative to a
  directory descriptor opened the same way, then ``fstat``: symlinks, FIFOs, sockets and device
  nodes are refused without ever blocking; a file with more than one hard link is refused;
* a file is read up to the size ``fstat`` gave; if it changed while read it is refused;
* the number of entries scanned, of files kept and their total size are capped.

Inputs are written the same way: each directory opened with ``O_NOFOLLOW``, an existing entry
unlinked (a symlink planted there is removed, never followed), the file created ``O_EXCL`` with
mode 0644 (no setuid bit can come in).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import stat
from typing import Any

MAX_NAME_BYTES = 1024
MAX_SCAN = 10000  # directory entries looked at during one collection


def check_name(name: object) -> str | None:
    """Why ``name`` is not an acceptable relative file name, or None when it is."""
    if not isinstance(name, str) or not name:
        return "empty name"
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if len(raw) > MAX_NAME_BYTES:
        return "name too long"
    if any(ord(c) < 32 or ord(c) == 127 or 0x80 <= ord(c) < 0xA0 for c in name):
        return "control character in name"
    if name.startswith("/"):
        return "absolute name"
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "'..', '.' or empty part in name"
    if any(len(p.encode()) > 255 for p in parts):
        return "name part too long"
    return None


def shown(name: str) -> str:
    """A printable form of a hostile name for reports (escapes, never raw control bytes)."""
    return name.encode("unicode_escape").decode("ascii")[:300]


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def write_file(root: str, name: str, data: bytes) -> None:
    """Create ``root/name`` (parents too) as the current user; never follows a link."""
    reason = check_name(name)
    if reason:
        raise ValueError(f"{shown(name)}: {reason}")
    parts = name.split("/")
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
        leaf = parts[-1]
        try:
            st = os.stat(leaf, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(f"{shown(name)}: a directory is in the way")
            os.unlink(leaf, dir_fd=fd)
        out = os.open(
            leaf,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
            dir_fd=fd,
        )
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view) :]
            os.fchmod(out, 0o644)
        finally:
            os.close(out)
    finally:
        os.close(fd)


def _matches(rel: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(rel, p) for p in patterns)


def collect(
    root: str, patterns: list[str], max_files: int, max_bytes: int
) -> tuple[list[tuple[str, bytes]], list[dict[str, str]]]:
    """Regular files under ``root`` whose relative path matches a pattern, and what was refused."""
    kept: list[tuple[str, bytes]] = []
    refused: list[dict[str, str]] = []
    total = 0
    scanned = 0

    def refuse(rel: str, reason: str) -> None:
        if len(refused) < 200:
            refused.append({"name": shown(rel), "reason": reason})

    stack: list[tuple[int, str]] = [(os.open(root, _DIR_FLAGS), "")]
    try:
        while stack:
            dfd, prefix = stack.pop()
            entries = sorted(os.listdir(dfd))
            for entry in entries:
                scanned += 1
                if scanned > MAX_SCAN:
                    refuse(prefix + entry, f"more than {MAX_SCAN} entries; scan stopped")
                    stack.append((dfd, prefix))  # closed below
                    return kept, refused
                rel = prefix + entry
                try:
                    st = os.stat(entry, dir_fd=dfd, follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if check_name(rel) is None:
                        with contextlib.suppress(OSError):
                            stack.append((os.open(entry, _DIR_FLAGS, dir_fd=dfd), rel + "/"))
                    continue
                if not _matches(rel, patterns):
                    continue
                reason = check_name(rel)
                if reason:
                    refuse(rel, reason)
                    continue
                if stat.S_ISLNK(st.st_mode):
                    refuse(rel, "symbolic link")
                    continue
                if not stat.S_ISREG(st.st_mode):
                    refuse(rel, "not a regular file (device, FIFO or socket)")
                    continue
                if len(kept) >= max_files:
                    refuse(rel, f"more than {max_files} files")
                    continue
                data, why = _read_regular(dfd, entry, max_bytes - total)
                if why:
                    refuse(rel, why)
                    continue
                assert data is not None
                total += len(data)
                kept.append((rel, data))
            os.close(dfd)
    finally:
        for dfd, _ in stack:
            with contextlib.suppress(OSError):
                os.close(dfd)
    return kept, refused


def _read_regular(dfd: int, entry: str, room: int) -> tuple[bytes | None, str | None]:
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except OSError as exc:
        return None, f"cannot open ({exc.strerror})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, "not a regular file (device, FIFO or socket)"
        if st.st_nlink > 1:
            return None, "hard link (more than one name)"
        if st.st_size > room:
            return None, "over the total size cap for collected files"
        chunks = []
        left = st.st_size
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        after = os.fstat(fd)
        extra = os.read(fd, 1)
        if left or extra or after.st_size != st.st_size or after.st_mtime_ns != st.st_mtime_ns:
            return None, "changed while it was read"
        return b"".join(chunks), None
    finally:
        os.close(fd)


def list_files(root: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Every entry under ``root`` (not following links): name (escaped), size, kind."""
    out: list[dict[str, Any]] = []
    stack = [(os.open(root, _DIR_FLAGS), "")]
    try:
        while stack and len(out) < limit:
            dfd, prefix = stack.pop()
            try:
                for entry in sorted(os.listdir(dfd)):
                    if len(out) >= limit:
                        break
                    rel = prefix + entry
                    try:
                        st = os.stat(entry, dir_fd=dfd, follow_symlinks=False)
                    except OSError:
                        continue
                    kind = (
                        "dir" if stat.S_ISDIR(st.st_mode)
                        else "file" if stat.S_ISREG(st.st_mode)
                        else "symlink" if stat.S_ISLNK(st.st_mode)
                        else "other"
                    )  # fmt: skip
                    out.append({"name": shown(rel), "size": st.st_size, "kind": kind})
                    if kind == "dir" and check_name(rel) is None:
                        with contextlib.suppress(OSError):
                            stack.append((os.open(entry, _DIR_FLAGS, dir_fd=dfd), rel + "/"))
            finally:
                os.close(dfd)
    finally:
        for dfd, _ in stack:
            with contextlib.suppress(OSError):
                os.close(dfd)
    return out


# -- the pipe between a collector process and the runner ------------------------------------


def send_collected(
    out_fd: int, root: str, patterns: list[str], max_files: int, max_bytes: int
) -> None:
    """In the collector process: write every kept file and the refusals to ``out_fd``."""
    kept, refused = collect(root, patterns, max_files, max_bytes)

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(out_fd, view) :]

    for name, data in kept:
        write(json.dumps({"name": name, "size": len(data)}).encode() + b"\n")
        write(data)
    write(json.dumps({"end": True, "refused": refused}).encode() + b"\n")


def read_collected(
    in_fd: int, max_files: int, max_bytes: int, deadline_s: float
) -> tuple[list[tuple[str, bytes]], list[dict[str, str]], str | None]:
    """In the runner: read what a collector sent, holding the caps whatever it claims."""
    import time

    end = time.monotonic() + deadline_s
    buf = bytearray()
    eof = False

    def fill() -> bool:
        nonlocal eof
        import select

        poller = select.poll()
        poller.register(in_fd, select.POLLIN)
        remaining = end - time.monotonic()
        if remaining <= 0 or not poller.poll(int(remaining * 1000) + 1):
            return False
        chunk = os.read(in_fd, 1 << 20)
        if not chunk:
            eof = True
            return False
        buf.extend(chunk)
        return True

    kept: list[tuple[str, bytes]] = []
    total = 0
    while True:
        while b"\n" not in buf:
            if len(buf) > 65536 or not fill():
                return kept, [], "the file collector ended early" if eof else "collection timed out"
        nl = buf.index(b"\n")
        try:
            head: Any = json.loads(bytes(buf[:nl]))
        except ValueError:
            return kept, [], "the file collector sent garbage"
        del buf[: nl + 1]
        if not isinstance(head, dict):
            return kept, [], "the file collector sent garbage"
        if head.get("end"):
            refused = head.get("refused")
            good = [
                {"name": str(r.get("name", ""))[:300], "reason": str(r.get("reason", ""))[:200]}
                for r in (refused if isinstance(refused, list) else [])[:200]
                if isinstance(r, dict)
            ]
            return kept, good, None
        name, size = head.get("name"), head.get("size")
        if check_name(name) or not isinstance(size, int) or size < 0:
            return kept, [], "the file collector sent a bad entry"
        if len(kept) >= max_files or total + size > max_bytes:
            return kept, [], "the file collector went over the caps"
        while len(buf) < size:
            if not fill():
                return kept, [], "the file collector ended early"
        kept.append((str(name), bytes(buf[:size])))
        total += size
        del buf[:size]


def collect_in_child(
    root: str, patterns: list[str], max_files: int, max_bytes: int, drop: Any
) -> tuple[list[tuple[str, bytes]], list[dict[str, str]], str | None]:
    """From the runner (root): fork a collector that becomes the sandbox user, read its report."""
    import signal

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            if os.getuid() == 0:
                drop()
            send_collected(w, root, patterns, max_files, max_bytes)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(w)
    try:
        return read_collected(r, max_files, max_bytes, 60.0)
    finally:
        os.close(r)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def frames_for(
    kept: list[tuple[str, bytes]], refused: list[dict[str, str]], error: str | None
) -> list[dict[str, Any]]:
    """Channel frames describing a collection (one per file, then the summary)."""
    import base64

    frames: list[dict[str, Any]] = [
        {"event": "file", "name": name, "data": base64.b64encode(data).decode()}
        for name, data in kept
    ]
    frames.append({"event": "files_done", "refused": refused, "error": error})
    return frames
