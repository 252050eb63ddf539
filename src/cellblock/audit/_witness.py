"""A witness that keeps checkpoints in a directory the log's writer does not control."""

from __future__ import annotations

import fcntl
import json
import os
import re
from pathlib import Path

from cellblock.audit._errors import WitnessError
from cellblock.audit._fsutil import (
    NotRegularFileError,
    atomic_write,
    fsync_dir,
    open_regular,
    read_regular,
)
from cellblock.audit.interface import Checkpoint, Witness

_LOG_ID = re.compile(r"^[0-9a-f]{32}$")


class DirectoryWitness(Witness):
    """Stores the newest checkpoint of each log as ``<dir>/<log id>.checkpoint.json``.

    Put the directory where the sandbox host's audit writer cannot rewrite it (another user,
    another mount, a host the operator controls). Replacement is atomic and monotonic: a smaller
    checkpoint never replaces a larger one, and a different head at the same size is a fork.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _file(self, log_id: str) -> Path:
        if not _LOG_ID.match(log_id):
            raise WitnessError(f"invalid log id {log_id!r}")
        return self.path / f"{log_id}.checkpoint.json"

    def submit(self, checkpoint: Checkpoint) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock_fd = open_regular(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise WitnessError(f"witness {self.path} is not writable: {exc.strerror}") from None
        except NotRegularFileError as exc:
            raise WitnessError(f"witness lock {exc.path} {exc.what}") from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            held = self.latest(checkpoint.log_id)
            if held is not None:
                if held.size > checkpoint.size:
                    return  # stale: another writer already witnessed a newer checkpoint
                if held.size == checkpoint.size:
                    if held.head != checkpoint.head:
                        raise WitnessError(
                            f"fork: witness holds head {held.head[:16]} at size {held.size}, "
                            f"refusing {checkpoint.head[:16]}"
                        )
                    return
            data = json.dumps(checkpoint.payload, sort_keys=True).encode() + b"\n"
            atomic_write(self._file(checkpoint.log_id), data)
            fsync_dir(self.path)
        except OSError as exc:
            raise WitnessError(f"witness {self.path} write failed: {exc.strerror}") from None
        finally:
            os.close(lock_fd)

    def latest(self, log_id: str) -> Checkpoint | None:
        path = self._file(log_id)
        try:
            data = read_regular(path)  # never a link to elsewhere, never a FIFO that blocks
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise WitnessError(f"cannot read witness file {path}: {exc.strerror}") from None
        except NotRegularFileError as exc:
            raise WitnessError(f"witness file {path} {exc.what}") from None
        try:
            payload = json.loads(data)
            if not isinstance(payload, dict):
                raise ValueError("not an object")
            return Checkpoint.from_payload(payload)
        except ValueError as exc:
            raise WitnessError(f"witness file {path} is damaged: {exc}") from None

    def log_ids(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return sorted(
            p.name.split(".", 1)[0]
            for p in self.path.glob("*.checkpoint.json")
            if _LOG_ID.match(p.name.split(".", 1)[0])
        )

    def __repr__(self) -> str:
        return f"DirectoryWitness({str(self.path)!r})"
