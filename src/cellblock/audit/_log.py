"""The writer: one hash chain, one writer at a time (flock), group commit, recovery, rotation."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cellblock.audit._errors import (
    AuditError,
    AuditKeyError,
    AuditWriteError,
    LogCorruptedError,
    WitnessError,
)
from cellblock.audit._format import (
    GENESIS_PREV,
    RESERVED_PREFIX,
    T_CHECKPOINT,
    T_GENESIS,
    T_MANIFEST,
    T_PRUNE,
    T_RECOVERED,
    build_body,
    build_line,
    canonical,
    now_ts,
    parse_ts,
    seg_stem,
)
from cellblock.audit._fsutil import (
    atomic_write,
    check_real_dir,
    fsync_dir,
    open_regular,
    read_regular,
)
from cellblock.audit._keys import destroy_key_file, key_id, load_private, raw_public, sign_payload
from cellblock.audit._paths import default_private_key
from cellblock.audit._segments import ChainState, ScanResult, list_segments, scan
from cellblock.audit.interface import Checkpoint, RecordRef, Witness

LOCK_NAME: Final = "audit.lock"
QUARANTINE: Final = "quarantine"
DEFAULT_ROTATE_BYTES: Final = 16 * 1024 * 1024
DEFAULT_ROTATE_AGE_S: Final = 86400.0


_CP_TYPE: Final = canonical(T_CHECKPOINT)


class AuditRecordError(AuditError, ValueError):
    """The event given to append() cannot be recorded (bad type or non-JSON payload)."""


@dataclass(slots=True)
class _Pending:
    type_c: bytes
    payload_c: bytes
    durable: bool
    done: bool = False
    ref: RecordRef | None = None
    error: BaseException | None = None


class AuditLog:
    """An append-only, hash-chained, checkpoint-signed audit log in one directory.

    Use :meth:`open`. Thread-safe and process-safe: every batch of appends is written under an
    exclusive ``flock`` on ``audit.lock``, after re-reading whatever other writers appended.
    """

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        signing_key: Path | None = None,
        witness: Witness | None = None,
        durable: bool = True,
        checkpoint_every: int = 1000,
        checkpoint_interval_s: float = 60.0,
        rotate_bytes: int = DEFAULT_ROTATE_BYTES,
        rotate_age_s: float | None = DEFAULT_ROTATE_AGE_S,
        retention_days: int = 30,
        lock_timeout_s: float = 10.0,
    ) -> AuditLog:
        """Open (creating if needed) the log in ``directory``, recovering a torn tail.

        ``signing_key`` defaults to the default private key path (see docs/audit.md).
        """
        return cls(
            directory,
            signing_key=signing_key,
            witness=witness,
            durable=durable,
            checkpoint_every=checkpoint_every,
            checkpoint_interval_s=checkpoint_interval_s,
            rotate_bytes=rotate_bytes,
            rotate_age_s=rotate_age_s,
            retention_days=retention_days,
            lock_timeout_s=lock_timeout_s,
        )

    def __init__(
        self,
        directory: Path,
        *,
        signing_key: Path | None = None,
        witness: Witness | None = None,
        durable: bool = True,
        checkpoint_every: int = 1000,
        checkpoint_interval_s: float = 60.0,
        rotate_bytes: int = DEFAULT_ROTATE_BYTES,
        rotate_age_s: float | None = DEFAULT_ROTATE_AGE_S,
        retention_days: int = 30,
        lock_timeout_s: float = 10.0,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")
        self._dir = Path(directory)
        self._key_path = Path(signing_key) if signing_key is not None else default_private_key()
        self._key: Ed25519PrivateKey = load_private(self._key_path)
        self._key_id = key_id(self._key.public_key())
        self._pub_hex = raw_public(self._key.public_key()).hex()
        self._witness = witness
        self._durable = durable
        self._every = checkpoint_every
        self._interval = checkpoint_interval_s
        self._rotate_bytes = rotate_bytes
        self._rotate_age = rotate_age_s
        self._retention_days = retention_days
        self._lock_timeout = lock_timeout_s
        self._cv = threading.Condition(threading.Lock())
        self._queue: list[_Pending] = []
        self._leader = False
        self._poisoned: str | None = None
        self._closed = False
        self._pid = os.getpid()
        self._witness_error: str | None = None
        self._pending_witness: Checkpoint | None = None
        self._lock_fd = -1
        self._type_cache: dict[str, bytes] = {}
        self._fd = -1
        self._live_first = 0
        self._end = 0
        self._st: ChainState = ChainState(next_seq=0, head=GENESIS_PREV)
        self.recoveries: list[dict[str, Any]] = []
        try:
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lock_fd = open_regular(self._dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditWriteError(
                f"cannot open audit directory {self._dir}: {exc.strerror}"
            ) from None
        try:
            with self._flocked():
                self._load()
                self._check_key()
        except BaseException:
            self._release_fds()
            raise

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def log_id(self) -> str:
        assert self._st.log_id is not None
        return self._st.log_id

    @property
    def key_id(self) -> str:
        return self._key_id

    def head(self) -> RecordRef:
        """The last record this process knows of (other processes may have appended since)."""
        assert self._st.head is not None
        return RecordRef(self._st.next_seq - 1, self._st.head)

    # -- locking ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _flocked(self) -> Iterator[None]:
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            deadline = time.monotonic() + self._lock_timeout
            delay = 50e-6
            while True:
                time.sleep(delay)
                delay = min(delay * 2, 2e-3)
                try:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise AuditWriteError(
                            f"audit log lock {self._dir / LOCK_NAME} held by another writer for "
                            f"more than {self._lock_timeout:g}s"
                        ) from None
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Be the only thread of this process writing, then hold the cross-process lock."""
        self._check_usable()
        with self._cv:
            while self._leader:
                self._cv.wait()
            self._leader = True
        try:
            with self._flocked():
                self._sync()
                yield
        finally:
            with self._cv:
                self._leader = False
                self._cv.notify_all()

    def _check_usable(self) -> None:
        if self._closed:
            raise AuditWriteError("audit log is closed")
        if os.getpid() != self._pid:
            raise AuditWriteError("an AuditLog cannot be used across fork(); open one in the child")
        if self._poisoned:
            raise AuditWriteError(
                f"audit log is in an unknown state after an earlier failure ({self._poisoned}); "
                "reopen it"
            )

    # -- loading and recovery (called with the flock held) -------------------------------------

    def _load(self) -> None:
        self._release_live()
        for name in os.listdir(self._dir):
            if name.startswith("seg-") and ".tmp" in name:
                os.unlink(self._dir / name)  # a temporary file of an interrupted rotation
        segs = list_segments(self._dir)
        live = sorted(s for s, kinds in segs.items() if "jsonl" in kinds)
        if not live:
            if segs:
                raise LogCorruptedError(
                    f"{self._dir} has closed segments but no live segment; run "
                    "'cellblock audit verify' and restore it before appending"
                )
            self._create()
            return
        # A lower live segment means a rotation finished all but its final unlink.
        for first in live[:-1]:
            kinds = segs[first]
            if "jsonl.gz" not in kinds or "manifest.json" not in kinds:
                raise LogCorruptedError(
                    f"{seg_stem(first)}.jsonl is not the newest segment yet has no compressed "
                    "copy or manifest; run 'cellblock audit verify'"
                )
            os.unlink(self._dir / f"{seg_stem(first)}.jsonl")
            fsync_dir(self._dir)
        first = live[-1]
        self._open_live(first)
        if first == 0 and os.fstat(self._fd).st_size == 0:
            self._release_live()
            self._create()
            return
        self._scan_from(0, ChainState(next_seq=first, head=GENESIS_PREV if first == 0 else None))
        if self._st.log_id is None:
            raise LogCorruptedError(f"live segment {seg_stem(first)}.jsonl has no valid record")
        self._after_scan()

    def _open_live(self, first: int) -> None:
        path = self._dir / f"{seg_stem(first)}.jsonl"
        try:
            # never a link (it would make the writer append outside the log) nor a FIFO
            self._fd = open_regular(path, os.O_RDWR | os.O_APPEND)
        except OSError as exc:
            raise AuditWriteError(f"cannot open {path}: {exc.strerror}") from None
        self._live_first = first
        self._end = 0

    def _scan_from(self, start: int, state: ChainState) -> None:
        """Scan the live file from ``start``; recover a bad tail; leave self._st current."""
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, size - start, start) if size > start else b""
        res = scan(data, start, state)
        self._st = state
        self._end = res.valid_end
        if res.error is not None:
            self._recover(res, size)

    def _recover(self, res: ScanResult, size: int) -> None:
        name = f"{seg_stem(self._live_first)}.jsonl"
        self._check_key()
        if res.later_checkpoint:
            raise LogCorruptedError(
                f"{name} is damaged at offset {res.valid_end} before a valid checkpoint: this is "
                "not a torn tail; run 'cellblock audit verify' and investigate"
            )
        if self._witness is not None and self._st.log_id is not None:
            try:
                w = self._witness.latest(self._st.log_id)
            except WitnessError:
                w = None
            # The witnessed part is records 0..w.size: the checkpoint at seq w.size included.
            # A witnessed checkpoint was on disk (fsynced) before the witness saw it, so damage
            # there is not a crash's torn write but tampering or media failure: keep the evidence.
            if w is not None and w.size >= self._st.next_seq:
                raise LogCorruptedError(
                    f"{name} is damaged at offset {res.valid_end} (seq {self._st.next_seq}), "
                    f"inside the witnessed part of the log (up to seq {w.size}); refusing to "
                    "recover automatically: run 'cellblock audit verify' and investigate"
                )
        tail = os.pread(self._fd, size - res.valid_end, res.valid_end)
        digest = hashlib.sha256(tail).hexdigest()
        qdir = self._dir / QUARANTINE
        with contextlib.suppress(FileExistsError):
            qdir.mkdir(mode=0o700)
        check_real_dir(qdir)  # a link here would move the evidence out of the log directory
        qname = f"{name}.{res.valid_end}.{digest[:16]}.tail"
        try:
            atomic_write(qdir / qname, tail, 0o600)
            fsync_dir(qdir)
            os.ftruncate(self._fd, res.valid_end)
            os.fsync(self._fd)
        except OSError as exc:
            raise AuditWriteError(f"cannot move aside the torn tail of {name}: {exc}") from None
        info = {
            "segment": name,
            "offset": res.valid_end,
            "length": len(tail),
            "sha256": digest,
            "moved_to": f"{QUARANTINE}/{qname}",
            "reason": res.error,
        }
        self.recoveries.append(info)
        if self._st.head is None or self._st.log_id is None:
            raise LogCorruptedError(f"{name} has no valid first record; cannot recover")
        self._write_system([(T_RECOVERED, info)], force_sync=True)

    def _after_scan(self) -> None:
        # A segment ending in a segment_end checkpoint belongs to a rotation that was interrupted.
        if (
            self._st.last_type == T_CHECKPOINT
            and self._st.last_payload is not None
            and self._st.last_payload.get("segment_end")
        ):
            self._check_key()
            self._finish_rotation()

    def _create(self) -> None:
        path = self._dir / f"{seg_stem(0)}.jsonl"
        os.close(open_regular(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600))
        fsync_dir(self._dir)
        self._open_live(0)
        log_id = uuid.uuid4().hex
        self._st = ChainState(
            next_seq=0,
            head=GENESIS_PREV,
            log_id=log_id,
            key_id=self._key_id,
            key_pub=self._pub_hex,
            last_cp_every=self._every,
            seg_start_key={"id": self._key_id, "pub": self._pub_hex},
        )
        genesis = {
            "log": log_id,
            "key": self._key_id,
            "pub": self._pub_hex,
            "every": self._every,
            "created": now_ts(),
        }
        self._write_system([(T_GENESIS, genesis)], force_sync=True)
        self._write_system([], force_sync=True, checkpoint="genesis")

    def _check_key(self) -> None:
        if self._st.key_id != self._key_id:
            raise AuditKeyError(
                f"signing key {self._key_path} ({self._key_id[:24]}…) is not this log's current "
                f"key ({(self._st.key_id or '?')[:24]}…); the log was re-keyed or belongs to "
                "another key"
            )

    def _sync(self) -> None:
        """Catch up with records other processes appended since this process last wrote."""
        st = os.fstat(self._fd)
        if st.st_nlink == 0 or st.st_size < self._end:
            self._load()  # rotated (or shrunk) under us
        elif st.st_size != self._end:
            self._scan_from(self._end, self._st)
            self._after_scan()
        else:
            return
        self._check_key()

    # -- writing ----------------------------------------------------------------------------

    def append(
        self, type: str, payload: Mapping[str, Any], *, durable: bool | None = None
    ) -> RecordRef:
        """Append one event; in durable mode return only once it is on disk.

        Raises AuditWriteError if the record could not be written and synced: the caller must
        then treat the event as not recorded (and refuse to run the code it describes).
        """
        if not isinstance(type, str) or not type or type.startswith(RESERVED_PREFIX):
            raise AuditRecordError(
                f"record type must be a non-empty string not starting with {RESERVED_PREFIX!r}"
            )
        if not isinstance(payload, Mapping):
            raise AuditRecordError("payload must be a mapping")
        try:
            payload_c = canonical(payload if isinstance(payload, dict) else dict(payload))
            type_c = self._type_cache.get(type)
            if type_c is None:
                type_c = canonical(type)
                if len(self._type_cache) < 1024:
                    self._type_cache[type] = type_c
        except ValueError as exc:
            raise AuditRecordError(str(exc)) from None
        p = _Pending(type_c, payload_c, self._durable if durable is None else durable)
        self._check_usable()
        with self._cv:
            self._queue.append(p)
            while not p.done and self._leader:
                self._cv.wait()
            if not p.done:
                self._leader = True
                batch, self._queue = self._queue, []
        if not p.done:
            try:
                self._commit(batch)
            finally:
                with self._cv:
                    self._leader = False
                    self._cv.notify_all()
        if p.error is not None:
            raise p.error
        assert p.ref is not None
        return p.ref

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            if self._poisoned:
                self._check_usable()
            with self._flocked():
                self._sync()
                self._maybe_rotate_by_age()
                refs = self._write_records(
                    [(p.type_c, p.payload_c) for p in batch], any(p.durable for p in batch)
                )
                for p, ref in zip(batch, refs, strict=True):
                    p.ref = ref
                if self._end >= self._rotate_bytes:
                    self._rotate_locked()
        except Exception as exc:
            err: AuditWriteError
            if isinstance(exc, AuditWriteError):
                err = exc
            else:
                err = AuditWriteError(f"audit append failed: {exc}")
                err.__cause__ = exc
            for p in batch:
                if p.ref is None:
                    p.error = err
        finally:
            for p in batch:
                p.done = True
        self._flush_witness()

    def _write_system(
        self,
        items: list[tuple[str, dict[str, Any]]],
        *,
        force_sync: bool = True,
        checkpoint: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> list[RecordRef]:
        enc = [(canonical(t), canonical(p)) for t, p in items]
        return self._write_records(enc, force_sync, checkpoint=checkpoint, cp_extra=extra)

    def _checkpoint_payload(self, size: int, head: str, ts: str, reason: str) -> dict[str, Any]:
        assert self._st.log_id is not None
        return {
            "log": self._st.log_id,
            "size": size,
            "head": head,
            "ts": ts,
            "key": self._key_id,
            "every": self._every,
            "reason": reason,
        }

    def _write_records(
        self,
        items: list[tuple[bytes, bytes]],
        sync: bool,
        *,
        checkpoint: str | None = None,
        cp_extra: dict[str, Any] | None = None,
    ) -> list[RecordRef]:
        """Chain, write and (if asked or a checkpoint is among them) sync records. Flock held."""
        st = self._st
        assert st.log_id is not None and st.head is not None
        log_id = st.log_id
        ts = now_ts()
        now = time.time()
        seq, head = st.next_seq, st.head
        last_cp = st.last_cp_seq
        every = min(self._every, st.last_cp_every)
        lines: list[bytes] = []
        refs: list[RecordRef] = []
        cps: list[dict[str, Any]] = []
        cp_type = _CP_TYPE

        def add(type_c: bytes, payload_c: bytes) -> RecordRef:
            nonlocal seq, head
            line, h = build_line(build_body(log_id, payload_c, head, seq, ts, type_c))
            lines.append(line)
            ref = RecordRef(seq, h)
            seq, head = seq + 1, h
            return ref

        def add_cp(reason: str, extra: dict[str, Any] | None = None) -> None:
            nonlocal last_cp
            payload = self._checkpoint_payload(seq, head, ts, reason)
            if extra:
                payload.update(extra)
            payload = sign_payload(self._key, payload)
            cps.append(payload)
            last_cp = seq
            add(cp_type, canonical(payload))

        if items and seq - last_cp > 1 and now - st.last_cp_time >= self._interval:
            add_cp("time")
        for type_c, payload_c in items:
            if seq - last_cp - 1 >= every:
                add_cp("count")
            refs.append(add(type_c, payload_c))
        if checkpoint is not None:
            add_cp(checkpoint, cp_extra)
        if not lines:
            return refs
        data = b"".join(lines)
        self._raw_write(data, sync or bool(cps))
        # Only now, with the bytes durable where required, does the in-memory head advance.
        self._end += len(data)
        if st.seg_first_prev is None:
            st.seg_first_prev, st.seg_first_ts, st.seg_start_time = st.head, ts, now
        st.next_seq, st.head = seq, head
        for cp in cps:
            st.last_cp_seq = cp["size"]
            st.last_cp_time = now
            st.last_cp_every = self._every
            if "next_key" in cp:
                st.seg_key_events.append(cp)
                st.key_id, st.key_pub = cp["next_key"]["id"], cp["next_key"]["pub"]
        if cps:
            st.last_type, st.last_payload = T_CHECKPOINT, cps[-1]
        else:
            st.last_type, st.last_payload = None, None
        if cps:
            self._pending_witness = Checkpoint.from_payload(cps[-1])
        return refs

    def _raw_write(self, data: bytes, sync: bool) -> None:
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            self._undo(exc)
            raise AuditWriteError(_describe("write to", self._live_name(), exc)) from None
        if sync:
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                # After a failed fsync the page cache cannot be trusted: stop using this handle.
                self._poisoned = f"fsync failed: {exc.strerror}"
                self._undo(exc)
                raise AuditWriteError(_describe("fsync", self._live_name(), exc)) from None

    def _undo(self, exc: OSError) -> None:
        """Cut a partial write back to the last good record so no garbage stays in the chain."""
        try:
            os.ftruncate(self._fd, self._end)
            os.fsync(self._fd)
        except OSError as exc2:
            self._poisoned = f"could not undo a failed write ({exc.strerror}): {exc2.strerror}"

    def _live_name(self) -> str:
        return str(self._dir / f"{seg_stem(self._live_first)}.jsonl")

    # -- checkpoints and witness ---------------------------------------------------------------

    def checkpoint(self) -> RecordRef:
        """Write a signed checkpoint now, sync it and hand it to the witness."""
        with self._exclusive():
            self._write_system([], checkpoint="explicit")
            ref = self.head()
        self._flush_witness(raise_errors=True)
        return ref

    def _flush_witness(self, raise_errors: bool = False) -> None:
        cp = self._pending_witness
        if self._witness is not None and cp is not None:
            try:
                self._witness.submit(cp)
                self._pending_witness = None
                self._witness_error = None
            except WitnessError as exc:
                # The records are durable; the witness is retried with the next checkpoint.
                self._witness_error = str(exc)
        if raise_errors and self._witness_error:
            raise WitnessError(f"checkpoint not witnessed: {self._witness_error}")

    # -- rotation ----------------------------------------------------------------------------

    def rotate(self) -> str | None:
        """Close the live segment now: sign, compress, manifest. Returns the closed file name."""
        with self._exclusive():
            if self._st.next_seq - self._live_first <= 1:
                return None  # nothing but the opening record: nothing to close
            name = self._rotate_locked()
        self._flush_witness()
        return name

    def _maybe_rotate_by_age(self) -> None:
        if self._rotate_age is None or self._st.seg_start_time is None:
            return
        if time.time() - self._st.seg_start_time >= self._rotate_age and (
            self._st.next_seq - self._live_first > 1
        ):
            self._rotate_locked()

    def _rotate_locked(self) -> str:
        self._write_system([], checkpoint="rotate", extra={"segment_end": True})
        return self._finish_rotation()

    def _finish_rotation(self) -> str:
        """Compress the live segment, sign its manifest, start the next segment. Idempotent."""
        st = self._st
        assert st.head is not None and st.log_id is not None and st.last_payload is not None
        stem = seg_stem(self._live_first)
        src = self._dir / f"{stem}.jsonl"
        gz_path = self._dir / f"{stem}.jsonl.gz"
        try:
            tmp = gz_path.with_name(gz_path.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            tmp_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with open(tmp_fd, "wb") as raw:
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                    off = 0
                    while off < self._end:
                        chunk = os.pread(self._fd, min(1 << 20, self._end - off), off)
                        if not chunk:
                            break
                        gz.write(chunk)
                        off += len(chunk)
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, gz_path)
            gz_bytes = read_regular(gz_path)
            manifest = sign_payload(
                self._key,
                {
                    "log": st.log_id,
                    "segment": gz_path.name,
                    "first_seq": self._live_first,
                    "last_seq": st.next_seq - 1,
                    "first_prev": st.seg_first_prev,
                    "last_hash": st.head,
                    "count": st.next_seq - self._live_first,
                    "first_ts": st.seg_first_ts,
                    "last_ts": st.last_payload["ts"],
                    "gz_sha256": hashlib.sha256(gz_bytes).hexdigest(),
                    "gz_bytes": len(gz_bytes),
                    "start_key": st.seg_start_key,
                    "end_key": {"id": st.key_id, "pub": st.key_pub},
                    "key_events": st.seg_key_events,
                    "every": st.last_cp_every,
                    "ts": now_ts(),
                    "key": self._key_id,
                },
            )
            atomic_write(
                self._dir / f"{stem}.manifest.json",
                canonical(manifest) + b"\n",
            )
            fsync_dir(self._dir)
            # The next segment opens with the manifest as its first record, chained to the last.
            nxt = st.next_seq
            mts = now_ts()
            body = build_body(
                st.log_id, canonical(manifest), st.head, nxt, mts, canonical(T_MANIFEST)
            )
            line, h = build_line(body)
            atomic_write(self._dir / f"{seg_stem(nxt)}.jsonl", line, 0o600)
            fsync_dir(self._dir)
            os.unlink(src)
            fsync_dir(self._dir)
        except OSError as exc:
            self._poisoned = f"rotation failed: {exc.strerror}"
            raise AuditWriteError(_describe("rotate", str(src), exc)) from None
        old_head = st.head
        self._release_live()
        self._open_live(nxt)
        self._end = len(line)
        self._st = ChainState(
            next_seq=nxt + 1,
            head=h,
            log_id=st.log_id,
            key_id=st.key_id,
            key_pub=st.key_pub,
            last_cp_seq=nxt - 1,
            last_cp_time=time.time(),
            last_cp_every=st.last_cp_every,
            seg_first_prev=old_head,
            seg_start_key={"id": st.key_id or "", "pub": st.key_pub or ""},
            seg_start_time=time.time(),
            seg_first_ts=mts,
            last_type=T_MANIFEST,
            last_payload=manifest,
        )
        return str(gz_path.name)

    # -- retention ---------------------------------------------------------------------------

    def prune(self, now: float | None = None) -> list[str]:
        """Delete closed segments older than the retention period; keep their manifests.

        A signed prune record naming each segment is made durable before any file is deleted,
        so the verifier can tell "pruned by policy" from "missing".
        """
        now = time.time() if now is None else now
        cutoff = now - self._retention_days * 86400
        with self._exclusive():
            victims: list[dict[str, Any]] = []
            for first, kinds in sorted(list_segments(self._dir).items()):
                if first >= self._live_first or not {"jsonl.gz", "manifest.json"} <= kinds:
                    continue
                m = json.loads(read_regular(self._dir / f"{seg_stem(first)}.manifest.json"))
                if parse_ts(m["last_ts"]) < cutoff:
                    victims.append(
                        {
                            "segment": m["segment"],
                            "first_seq": m["first_seq"],
                            "last_seq": m["last_seq"],
                            "gz_sha256": m["gz_sha256"],
                        }
                    )
            if not victims:
                return []
            assert self._st.log_id is not None
            record = sign_payload(
                self._key,
                {
                    "log": self._st.log_id,
                    "segments": victims,
                    "retention_days": self._retention_days,
                    "ts": now_ts(),
                    "key": self._key_id,
                },
            )
            self._write_system([(T_PRUNE, record)], force_sync=True)
            try:
                for v in victims:
                    (self._dir / v["segment"]).unlink(missing_ok=True)
                fsync_dir(self._dir)
            except OSError as exc:
                raise AuditWriteError(_describe("prune", str(self._dir), exc)) from None
        self._flush_witness()
        return [v["segment"] for v in victims]

    # -- key rotation ------------------------------------------------------------------------

    def rotate_key(self, new_private_key: Path, *, destroy_old: bool = True) -> str:
        """Announce a new signing key in a checkpoint signed by the current one, then switch.

        With ``destroy_old`` the old private key file is overwritten and unlinked, so a key
        stolen later cannot re-sign records written before this point. Returns the new key id.
        """
        new_key = load_private(Path(new_private_key))
        new_id = key_id(new_key.public_key())
        if new_id == self._key_id:
            raise AuditKeyError("the new signing key is the current one")
        with self._exclusive():
            self._write_system(
                [],
                checkpoint="rekey",
                extra={"next_key": {"id": new_id, "pub": raw_public(new_key.public_key()).hex()}},
            )
            old_path = self._key_path
            self._key, self._key_id, self._key_path = new_key, new_id, Path(new_private_key)
            self._pub_hex = raw_public(new_key.public_key()).hex()
            # The first checkpoint under the new key proves the new key holder took over.
            self._write_system([], checkpoint="rekeyed")
        self._flush_witness()
        if destroy_old:
            destroy_key_file(old_path)
        return new_id

    # -- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        """Write a closing checkpoint if records are uncovered, hand it to the witness, release."""
        if self._closed:
            return
        try:
            if os.getpid() == self._pid and not self._poisoned:
                with self._exclusive():
                    if self._st.next_seq - self._st.last_cp_seq > 1:
                        self._write_system([], checkpoint="close")
                self._flush_witness(raise_errors=True)
        finally:
            self._closed = True
            self._release_fds()

    def _release_live(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _release_fds(self) -> None:
        self._release_live()
        if getattr(self, "_lock_fd", -1) >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<AuditLog {self._dir} log={self._st.log_id} next_seq={self._st.next_seq}>"


def _describe(action: str, path: str, exc: OSError) -> str:
    hint = {
        errno.ENOSPC: "the disk is full",
        errno.EFBIG: "the file size limit was reached",
        errno.EROFS: "the file system is read-only",
        errno.EDQUOT: "the disk quota is exhausted",
        errno.EIO: "an I/O error occurred",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    return (
        f"could not {action} {path}: {hint}; the event was NOT recorded and the code it "
        "describes must not run"
    )
