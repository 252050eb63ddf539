"""The verifier's strict byte-level fast path never accepts what the full JSON parse would reject,
and never changes a verification report."""

from __future__ import annotations

import random
import time

import pytest

from cellblock.audit import _verify_records, verify
from cellblock.audit._format import (
    NOT_KEPT,
    LineError,
    build_body,
    build_line,
    canonical,
    decode_ordinary,
    parse_body,
    record_hash,
    split_line,
)

from ._util import Env, read_lines, write_lines

PAYLOADS = [
    {},
    [],
    None,
    7,
    "x",
    {"a": [1, {"b": None}], "s": 'q"uo\\te ,"prev":"' + "0" * 64 + '","seq":1'},
    {"prev": "0" * 64, "seq": 3, "type": "log.checkpoint", "v": 1},
    {"u": "é\u2028😀", "n": -12, "t": True},
]


def _line(payload: object, *, type_: str = "exec", seq: int = 5) -> bytes:
    body = build_body(
        "ab" * 16,
        canonical(payload),
        "cd" * 32,
        seq,
        "2026-01-01T00:00:00.000001Z",
        canonical(type_),
    )
    return build_line(body)[0]


def _slow(line: bytes) -> tuple[str, bool, dict[str, object]] | None:
    try:
        stored, body = split_line(line)
        rec = parse_body(body)
    except LineError:
        return None
    return stored, record_hash(body) == stored, rec


def _agree(line: bytes) -> None:
    fast = decode_ordinary(line)
    if fast is None:
        return
    slow = _slow(line)
    assert slow is not None, line  # the fast path accepted a line the full parse rejects
    assert fast[:2] == slow[:2], line
    assert fast[2]["payload"] is NOT_KEPT
    assert {k: v for k, v in fast[2].items() if k != "payload"} == {
        k: v for k, v in slow[2].items() if k != "payload"
    }, line
    assert not str(slow[2]["type"]).startswith("log.")


def test_writer_output_takes_the_fast_path() -> None:
    for p in PAYLOADS:
        line = _line(p)
        assert decode_ordinary(line) is not None, line
        _agree(line)


@pytest.mark.parametrize(
    "edit",
    [
        (b'"v":1}', b'"v":1.0}'),
        (b'"v":1}', b'"v": 1}'),
        (b'"seq":5', b'"seq":05'),
        (b'"seq":5', b'"seq":-0'),
        (b'"seq":5', b'"seq":5.0'),
        (b'"type":"exec"', b'"type":"ex\\u0065c"'),
        (b'"type":"exec"', b'"type":"log.checkpoint"'),
        (b'"prev":"cdcd', b'"prev":"CDcd'),
        (b'{"log":', b'{ "log":'),
        (b'"payload":{}', b'"payload":{} '),
        (b'"payload":{}', b'"payload":{,}'),
        (b'"payload":{}', b'"payload":{"a":NaN}'),
        (b'"payload":{}', b'"payload":"\xff"'),
        (b'"payload":{}', b'"payload":"\x01"'),
        (b'"payload":{}', b'"payload":{}}{'),
        (b'"payload":{}', b'"payload":' + b"[" * 100_000 + b"]" * 100_000),
    ],
)
def test_crafted_variants_agree(edit: tuple[bytes, bytes]) -> None:
    line = _line({})
    assert edit[0] in line
    _agree(line.replace(edit[0], edit[1], 1))


def test_random_mutations_agree() -> None:
    rng = random.Random(8785)
    lines = [_line(p, seq=rng.randrange(10**6)) for p in PAYLOADS]
    for _ in range(20_000):
        data = bytearray(rng.choice(lines))
        for _ in range(rng.randrange(1, 3)):
            i = rng.randrange(len(data))
            op = rng.randrange(4)
            if op == 0:
                data[i] ^= 1 << rng.randrange(8)
            elif op == 1:
                data.insert(i, rng.choice(b' "\\,:{}[]0123456789.-e\n\x00\xc3\xff'))
            elif op == 2:
                del data[i]
            else:
                data[i] = rng.randrange(256)
        _agree(bytes(data))


def test_reports_identical_with_and_without_fast_path(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.fill(30, checkpoint_every=4)
    live = env.live()
    original = read_lines(live)
    rng = random.Random(1)
    kinds: set[str] = set()
    for _ in range(150):
        lines = list(original)
        i = rng.randrange(len(lines))
        data = bytearray(lines[i])
        j = rng.randrange(len(data) - 1)
        data[j] = rng.choice(b' "\\,:{}[]0123456789abcdef.-')
        lines[i] = bytes(data)
        if rng.random() < 0.3:
            k = rng.randrange(len(lines))
            lines[i], lines[k] = lines[k], lines[i]
        write_lines(live, lines)
        now = time.time()
        fast = verify(env.log_dir, trust_root=env.pub, witness=env.witness, now=now)
        with monkeypatch.context() as mp:
            mp.setattr(_verify_records, "decode_ordinary", lambda line: None)
            slow = verify(env.log_dir, trust_root=env.pub, witness=env.witness, now=now)
        assert fast.to_dict() == slow.to_dict()
        kinds.update(p.kind for p in fast.problems)
    assert {"hash_mismatch", "malformed", "reordering"} <= kinds, kinds


def test_now_ts_matches_strftime(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt
    import types

    from cellblock.audit import _format

    for ns in (0, 999_999_999, 1_000_000_000, 1_764_287_999_999_999_000, 1_764_288_000_000_001_999):
        monkeypatch.setattr(_format, "time", types.SimpleNamespace(time_ns=lambda ns=ns: ns))
        exact = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)
        assert _format.now_ts() == exact.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_hostile_nesting_is_malformed_not_a_crash() -> None:
    line = _line({}).replace(b'"payload":{}', b'"payload":' + b"[" * 100_000 + b"]" * 100_000)
    assert decode_ordinary(line) is None
    with pytest.raises(LineError) as exc:
        parse_body(split_line(line)[1])
    assert exc.value.kind == "malformed"
