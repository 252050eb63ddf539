"""The on-disk record format: canonical bytes, domain-separated hashes, file names.

A stored line is the RFC 8785 canonical JSON of ``{"hash": H, "record": R}`` followed by ``\\n``.
Because keys sort, every line starts with the fixed 84-byte prefix ``{"hash":"<64 hex>","record":``
and ends with ``}\\n``; the bytes in between are ``R``'s canonical form, and
``H = SHA-256(RECORD_DOMAIN || R)``. The writer serialises once and the verifier hashes the
stored slice, never a re-serialisation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from json.scanner import make_scanner
from typing import Any, Final, cast

import rfc8785

FORMAT_VERSION: Final = 1
RECORD_DOMAIN: Final = b"cellblock.audit.record.v1\x00"
SIGN_DOMAIN: Final = b"cellblock.audit.signed.v1\x00"
GENESIS_PREV: Final = "0" * 64
SIG_ALG: Final = "ed25519"

PREFIX_LEN: Final = 84  # len('{"hash":"') + 64 + len('","record":')
_PREFIX_HEAD: Final = b'{"hash":"'
_PREFIX_TAIL: Final = b'","record":'
_HEX: Final = frozenset(b"0123456789abcdef")

# Reserved record types written by the log itself.
T_GENESIS: Final = "log.genesis"
T_CHECKPOINT: Final = "log.checkpoint"
T_MANIFEST: Final = "log.manifest"
T_PRUNE: Final = "log.prune"
T_RECOVERED: Final = "log.recovered"
RESERVED_PREFIX: Final = "log."

SEG_RE: Final = re.compile(r"^seg-(\d{16})\.(jsonl|jsonl\.gz|manifest\.json)$")
_SAFE_INT: Final = 2**53 - 1


def seg_stem(first_seq: int) -> str:
    return f"seg-{first_seq:016d}"


_ts_second: tuple[int, str] = (-1, "")


def now_ts() -> str:
    """UTC wall clock, microsecond precision, RFC 3339 with a ``Z``.

    Same text as ``datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")`` (tested), but the
    date-and-time part is formatted once per second: this runs on every append.
    """
    global _ts_second
    sec, us = divmod(time.time_ns() // 1000, 1_000_000)
    cached = _ts_second  # one read: another thread may replace it, never half-update it
    if cached[0] != sec:
        cached = (sec, dt.datetime.fromtimestamp(sec, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S."))
        _ts_second = cached
    return f"{cached[1]}{us:06d}Z"


def parse_ts(ts: str) -> float:
    """Seconds since the epoch for a timestamp this module wrote."""
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _simple(value: Any) -> bool:
    """True when ``json.dumps`` output is already RFC 8785 canonical for ``value``.

    That holds for str/bool/None/safe ints/lists/dicts with ASCII keys (Python sorts keys by code
    point, RFC 8785 by UTF-16 unit: they agree on ASCII). Floats take the slow, exact path.
    Iterative, because this runs on every append.
    """
    stack = [value]
    pop, push, extend = stack.pop, stack.append, stack.extend
    seen = 0
    while stack:
        v = pop()
        seen += 1
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int:
            if not -_SAFE_INT <= v <= _SAFE_INT:
                return False
        elif t is dict:
            for k, x in v.items():
                if type(k) is not str or not k.isascii():
                    return False
                push(x)
        elif t is list or t is tuple:
            extend(v)
        else:
            return False
        if seen > 100_000:
            return False  # pathological nesting: let rfc8785 decide
    return True


_ENCODER: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=True
)


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON; ValueError when the value cannot be represented."""
    if _simple(value):
        try:
            return _ENCODER.encode(value).encode("utf-8")
        except (UnicodeEncodeError, ValueError, RecursionError) as exc:
            raise ValueError(f"payload is not representable as canonical JSON: {exc}") from None
    try:
        out: bytes = rfc8785.dumps(value)
    except Exception as exc:  # rfc8785 raises its own hierarchy plus TypeError
        raise ValueError(f"payload is not representable as canonical JSON: {exc}") from None
    return out


def record_hash(body: bytes) -> str:
    return hashlib.sha256(RECORD_DOMAIN + body).hexdigest()


def build_body(log_id: str, payload_c: bytes, prev: str, seq: int, ts: str, type_c: bytes) -> bytes:
    """Canonical bytes of a record, assembled from pre-canonicalised parts.

    Keys in canonical (sorted) order: log, payload, prev, seq, ts, type, v. Nesting canonical
    fragments yields the canonical whole, so this equals ``canonical(record)`` (tested).
    """
    return b"".join(
        (
            b'{"log":"',
            log_id.encode(),
            b'","payload":',
            payload_c,
            b',"prev":"',
            prev.encode(),
            b'","seq":',
            str(seq).encode(),
            b',"ts":"',
            ts.encode(),
            b'","type":',
            type_c,
            b',"v":1}',
        )
    )


def build_line(body: bytes) -> tuple[bytes, str]:
    h = record_hash(body)
    return b"".join((_PREFIX_HEAD, h.encode(), _PREFIX_TAIL, body, b"}\n")), h


class LineError(Exception):
    """A stored line is not a well-formed record; ``kind`` is malformed or hash_mismatch."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def split_line(line: bytes) -> tuple[str, bytes]:
    """Check the fixed envelope of ``line`` (with its newline); return (stored hash, body)."""
    if len(line) < PREFIX_LEN + 3 or not line.endswith(b"}\n"):
        raise LineError("malformed", "line is not a complete record envelope")
    if line[:9] != _PREFIX_HEAD or line[73:PREFIX_LEN] != _PREFIX_TAIL:
        raise LineError("malformed", "record envelope is not in canonical form")
    stored = line[9:73]
    if not _HEX.issuperset(stored):
        raise LineError("malformed", "stored hash is not 64 lowercase hex digits")
    return stored.decode(), line[PREFIX_LEN:-2]


_FIELDS: Final = ("log", "payload", "prev", "seq", "ts", "type", "v")
_FIELDSET: Final = frozenset(_FIELDS)
_decode = json.JSONDecoder().decode


def parse_body(body: bytes) -> dict[str, Any]:
    """Parse record bytes into a dict and check field presence and types."""
    try:
        rec = _decode(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: hostile nesting must be reported, never crash the verifier.
        raise LineError("malformed", f"record is not valid JSON: {exc}") from None
    if type(rec) is not dict or rec.keys() != _FIELDSET:
        raise LineError("malformed", "record does not have exactly the fields " + ",".join(_FIELDS))
    if rec["v"] != FORMAT_VERSION:
        raise LineError("malformed", f"unsupported record format version {rec['v']!r}")
    seq = rec["seq"]
    if type(seq) is not int or seq < 0:
        raise LineError("malformed", "seq is not a non-negative integer")
    if (
        type(rec["prev"]) is not str
        or len(rec["prev"]) != 64
        or type(rec["type"]) is not str
        or type(rec["ts"]) is not str
        or type(rec["log"]) is not str
    ):
        raise LineError("malformed", "prev, type, ts or log has the wrong type")
    return rec


# The strict fast path for the verifier. It matches only a line whose envelope and record fields are
# byte-for-byte in the form the writer produces (canonical field order, no whitespace, no escapes in
# log/ts/type, lowercase hex hashes, a minimal decimal seq, ``"v":1``). Any line it matches is one
# that ``split_line`` + ``parse_body`` would accept with the same field values, once the payload
# slice is checked to be one valid JSON value; everything else takes that slow path, which names the
# problem. Payload comes from a greedy ``.*``: the tail after the real payload cannot contain
# ``,"prev":"`` (its strings exclude quotes), so the split is the real one.
FAST_LINE: Final = re.compile(
    rb'\{"hash":"([0-9a-f]{64})","record":'
    rb'(\{"log":"([^"\\\x00-\x1f]*)","payload":(.*),"prev":"([0-9a-f]{64})",'
    rb'"seq":(0|[1-9][0-9]{0,17}),"ts":"([^"\\\x00-\x1f]*)","type":"([^"\\\x00-\x1f]*)",'
    rb'"v":1\})\}\n',
    re.DOTALL,
)
_RECORD_HASHER: Final = hashlib.sha256(RECORD_DOMAIN)
_fast_match: Final = FAST_LINE.fullmatch
# The decoder's own scanner (the C one): what json.loads runs, minus the whitespace handling.
_scan_json: Final[Callable[[str, int], tuple[Any, int]]] = make_scanner(
    cast(Any, json.JSONDecoder())  # typeshed types the argument oddly
)
NOT_KEPT: Final[Any] = object()  # stands for the validated, dropped payload of an ordinary record


def decode_ordinary(line: bytes) -> tuple[str, bool, dict[str, Any]] | None:
    """The verifier's fast path: (stored hash, hash ok, fields) of an ordinary record, or None.

    None means "use ``split_line`` + ``parse_body``": the line is not in the writer's exact form,
    its type is reserved (``log.``, whose payload the verifier reads), or its payload is not valid
    JSON. Whenever this returns fields, the slow path would have returned the same ones, except
    that ``payload`` is checked and then replaced by ``NOT_KEPT``: the verifier never reads an
    ordinary record's payload, and keeping 10^5 parsed payloads alive costs more than parsing.
    """
    m = _fast_match(line)
    if m is None or m[8].startswith(b"log."):
        return None
    try:
        text = m[4].decode("utf-8")
        if _scan_json(text, 0)[1] != len(text):  # a whole JSON value, nothing around it
            return None
        rec = {
            "log": m[3].decode("utf-8"),
            "payload": NOT_KEPT,
            "prev": m[5].decode(),
            "seq": int(m[6]),
            "ts": m[7].decode("utf-8"),
            "type": m[8].decode("utf-8"),
            "v": FORMAT_VERSION,
        }
    except (ValueError, UnicodeDecodeError, StopIteration, RecursionError):
        return None
    h = _RECORD_HASHER.copy()
    h.update(m[2])
    stored = m[1].decode()
    return stored, h.hexdigest() == stored, rec


def decode_line(line: bytes) -> tuple[str, dict[str, Any]]:
    """Envelope, hash and fields of a stored line; raises LineError naming what failed."""
    stored, body = split_line(line)
    if record_hash(body) != stored:
        raise LineError("hash_mismatch", "stored hash does not match the record bytes")
    return stored, parse_body(body)


def signed_message(payload: Mapping[str, Any]) -> bytes:
    """What a signature covers: the domain tag and the canonical payload without ``sig``."""
    unsigned = {k: v for k, v in payload.items() if k != "sig"}
    return SIGN_DOMAIN + canonical(unsigned)
