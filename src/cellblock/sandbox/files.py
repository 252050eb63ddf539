"""Files in and out of a sandbox, host side: inputs, artifacts, caps, and saving them safely.

Nothing here trusts a name that came out of a sandbox: every artifact name is checked again
(:func:`check_name`) and :func:`save_artifacts` creates each file under the target directory
through directory descriptors opened with ``O_NOFOLLOW``, with ``O_EXCL`` for the file itself, so
a link planted in the target directory is never followed and nothing is written outside it.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellblock.sandbox._runner_files import check_name, shown
from cellblock.sandbox.errors import SandboxError

__all__ = [
    "Artifact",
    "FileCaps",
    "FileError",
    "InputFile",
    "RefusedFile",
    "check_name",
    "collect_patterns",
    "input_files",
    "save_artifacts",
    "shown",
]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class FileError(SandboxError):
    """A file could not be handed to, or taken from, a sandbox."""

    exit_code = 64  # bad input (a name, a path, a cap): the caller's to fix


@dataclass(frozen=True)
class FileCaps:
    """Bounds on the files of one run or session step, in each direction."""

    max_files: int = 100
    max_bytes: int = 32 * 1024 * 1024


@dataclass(frozen=True)
class InputFile:
    """One file to place in the sandbox's working directory before the program runs."""

    name: str
    data: bytes

    def __post_init__(self) -> None:
        reason = check_name(self.name)
        if reason:
            raise FileError(
                f"cannot upload {shown(self.name)!s}: {reason}; give a relative name such as "
                "data/input.csv"
            )

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "size": len(self.data), "sha256": self.sha256}


@dataclass(frozen=True)
class Artifact:
    """One file that came back: name (relative to the working directory), media type, bytes."""

    name: str
    media_type: str
    size: int
    sha256: str
    data: bytes = b""
    kind: str = "file"  # "file" (collected by pattern) or "figure" (a matplotlib figure)

    @classmethod
    def from_bytes(cls, name: str, data: bytes, *, kind: str = "file") -> Artifact:
        reason = check_name(name)
        if reason:
            raise FileError(f"the sandbox returned a bad file name {shown(name)}: {reason}")
        return cls(
            name, media_type(name, data), len(data), hashlib.sha256(data).hexdigest(), data, kind
        )

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256, "kind": self.kind}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "media_type": self.media_type,
            "size": self.size,
            "sha256": self.sha256,
            "kind": self.kind,
            "data_base64": base64.b64encode(self.data).decode(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Artifact:
        raw = base64.b64decode(data.get("data_base64") or "")
        return cls(
            str(data["name"]),
            str(data["media_type"]),
            int(data["size"]),
            str(data["sha256"]),
            raw,
            str(data.get("kind", "file")),
        )


@dataclass(frozen=True)
class RefusedFile:
    """A file the sandbox side would not hand back, and why (the name is shown escaped)."""

    name: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "reason": self.reason}


def media_type(name: str, data: bytes) -> str:
    """The media type from the name, but PNG only when the bytes are a PNG."""
    if data.startswith(PNG_MAGIC):
        return "image/png"
    guessed, _ = mimetypes.guess_type(name, strict=False)
    if guessed == "image/png" or guessed is None:
        return "application/octet-stream"
    return guessed


FileSpec = Mapping[str, "bytes | os.PathLike[str]"] | Iterable["os.PathLike[str] | str"]


def input_files(files: FileSpec | None, caps: FileCaps | None = None) -> tuple[InputFile, ...]:
    """Normalise ``files=``: a mapping of name -> bytes or local path, or local paths (their
    base names become the names). Reads local files now; enforces the caps."""
    caps = caps or FileCaps()
    if files is None:
        return ()
    items: list[tuple[str, bytes | os.PathLike[str] | str]]
    if isinstance(files, Mapping):
        items = list(files.items())
    else:
        items = [(Path(p).name, p) for p in files]
    out: list[InputFile] = []
    total = 0
    for name, value in items:
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
        elif isinstance(value, os.PathLike | str):
            data = _read_local(Path(value))
        else:
            raise FileError(
                f"the file {name!r} must be given as bytes or a local path, not "
                f"{type(value).__name__}"
            )
        total += len(data)
        out.append(InputFile(str(name), data))
    if len(out) > caps.max_files:
        raise FileError(f"{len(out)} files to upload, above the cap of {caps.max_files}")
    if total > caps.max_bytes:
        raise FileError(
            f"the files to upload hold {total} bytes, above the cap of {caps.max_bytes}"
        )
    names = [f.name for f in out]
    if len(set(names)) != len(names):
        raise FileError("two files to upload have the same name; give each its own")
    return tuple(out)


def _read_local(path: Path) -> bytes:
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise FileError(f"{path} is not a regular file; give a file to upload")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise FileError(f"{path} does not exist; give a file that exists") from exc
    except OSError as exc:
        raise FileError(f"cannot read {path} ({exc.strerror}); check its permissions") from exc


def collect_patterns(collect: Iterable[str] | str | None) -> tuple[str, ...]:
    """Normalise ``collect=``: one glob pattern or several, relative to the working directory."""
    if collect is None:
        return ()
    patterns = (collect,) if isinstance(collect, str) else tuple(collect)
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern or pattern.startswith("/"):
            raise FileError(
                f"cannot collect {pattern!r}: give a glob pattern relative to the working "
                "directory, such as *.png or out/*"
            )
        if ".." in pattern.split("/") or "\x00" in pattern:
            raise FileError(f"cannot collect {pattern!r}: '..' is not allowed in a pattern")
    return patterns


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def save_artifacts(artifacts: Iterable[Artifact], directory: Path) -> list[Path]:
    """Write artifacts under ``directory`` (created if needed); never outside it, never through a
    link, never over an existing entry that is not a regular file; mode 0644 at most."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for artifact in artifacts:
        reason = check_name(artifact.name)
        if reason:
            raise FileError(f"refusing to save {shown(artifact.name)}: {reason}")
        parts = artifact.name.split("/")
        fd = os.open(directory, _DIR_FLAGS)
        try:
            for part in parts[:-1]:
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise FileError(
                        f"refusing to save {artifact.name}: {part!r} under {directory} is not a "
                        "plain directory (a link?)"
                    ) from exc
                os.close(fd)
                fd = nxt
            leaf = parts[-1]
            try:
                st = os.stat(leaf, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None:
                if not stat.S_ISREG(st.st_mode):
                    raise FileError(
                        f"refusing to save {artifact.name}: {directory / artifact.name} exists "
                        "and is not a regular file"
                    )
                os.unlink(leaf, dir_fd=fd)
            out = os.open(
                leaf,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o644,
                dir_fd=fd,
            )
            try:
                view = memoryview(artifact.data)
                while view:
                    view = view[os.write(out, view) :]
            finally:
                os.close(out)
        finally:
            os.close(fd)
        written.append(directory / artifact.name)
    return written
