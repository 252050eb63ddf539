"""Round trips, format details, keys and the public API."""

from __future__ import annotations

import json
import os
import random
import stat
from pathlib import Path

import pytest
import rfc8785

from cellblock.audit import (
    AuditError,
    AuditKeyError,
    AuditLog,
    AuditRecordError,
    AuditWriteError,
    VerificationError,
    generate_keypair,
    key_id,
    load_public,
    verify,
)
from cellblock.audit._format import build_body, canonical, decode_line
from cellblock.errors import CellblockError

from ._util import Env, kinds, read_lines, rec_of


def test_round_trip_and_refs(env: Env) -> None:
    with env.open(checkpoint_every=5) as log:
        refs = [log.append("exec", {"i": i}) for i in range(23)]
    seqs = [r.seq for r in refs]
    assert seqs == sorted(seqs) and len(set(seqs)) == 23
    rep = env.verify()
    assert rep.ok, rep.problems
    assert rep.warnings == ()
    assert rep.records == rep.head.seq + 1  # type: ignore[union-attr]
    assert rep.witnessed_size == rep.records - 1  # the close checkpoint itself is the head
    by_seq = {rec_of(line)["seq"]: line for line in read_lines(env.live())}
    for r in refs:
        assert decode_line(by_seq[r.seq])[0] == r.hash


def test_reopen_continues_chain(env: Env) -> None:
    env.fill(7)
    env.fill(7)
    rep = env.verify()
    assert rep.ok, rep.problems
    payloads = [rec_of(line) for line in read_lines(env.live())]
    assert [r["payload"]["i"] for r in payloads if r["type"] == "exec"] == list(range(7)) * 2


def test_body_is_rfc8785_canonical() -> None:
    rng = random.Random(1)
    alphabet = ["a", "é", "\u2028", "\U0001f600", '"', "\\", "\n", "\x01", "\ue000", "Z"]
    for _ in range(300):

        def word() -> str:
            return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))

        payload = {
            word(): rng.choice(
                [
                    word(),
                    rng.randint(-(2**53) + 1, 2**53 - 1),
                    None,
                    True,
                    1.5e-7,
                    [1, 2.5, word()],
                    {word(): 0.1},
                ]
            )
            for _ in range(rng.randint(0, 6))
        }
        record = {
            "log": "a" * 32,
            "payload": payload,
            "prev": "b" * 64,
            "seq": 7,
            "ts": "2026-01-01T00:00:00.000000Z",
            "type": "exec",
            "v": 1,
        }
        assert canonical(payload) == rfc8785.dumps(payload)
        body = build_body(
            "a" * 32, canonical(payload), "b" * 64, 7, record["ts"], canonical("exec")
        )
        assert body == rfc8785.dumps(record)


def test_append_rejects_bad_input(env: Env) -> None:
    with env.open() as log:
        with pytest.raises(AuditRecordError):
            log.append("log.checkpoint", {})  # reserved prefix
        with pytest.raises(AuditRecordError):
            log.append("exec", {"x": float("nan")})
        with pytest.raises(AuditRecordError):
            log.append("exec", {"x": object()})
        with pytest.raises(AuditRecordError):
            log.append("exec", {"x": 2**60})  # outside the I-JSON safe range
    assert env.verify().ok


def test_error_hierarchy() -> None:
    assert issubclass(AuditError, CellblockError)
    assert issubclass(AuditWriteError, AuditError)
    assert issubclass(VerificationError, AuditError)


def test_keygen_modes_and_refusals(tmp_path: Path) -> None:
    priv, pub = tmp_path / "k" / "p.key", tmp_path / "k" / "p.pub"
    old = os.umask(0)
    try:
        kid = generate_keypair(priv, pub)
    finally:
        os.umask(old)
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert kid == key_id(load_public(pub))
    with pytest.raises(AuditKeyError):
        generate_keypair(priv, tmp_path / "other.pub")
    with pytest.raises(AuditKeyError):
        generate_keypair(tmp_path / "other.key", pub)
    priv.chmod(0o640)
    with pytest.raises(AuditKeyError, match="readable by group"):
        AuditLog.open(tmp_path / "log", signing_key=priv)


def test_trust_root_forms(env: Env) -> None:
    env.fill(3)
    fp = key_id(load_public(env.pub))
    for trust in (env.pub, fp, load_public(env.pub), str(env.pub)):
        assert env.verify(trust=trust).ok
    other_priv, other_pub = env.root / "o.key", env.root / "o.pub"
    generate_keypair(other_priv, other_pub)
    assert "unknown_key" in kinds(env.verify(trust=other_pub))
    with pytest.raises(AuditKeyError):
        AuditLog.open(env.log_dir, signing_key=other_priv)  # not this log's key


def test_key_rotation(env: Env) -> None:
    new_priv, new_pub = env.root / "keys" / "b.key", env.root / "keys" / "b.pub"
    generate_keypair(new_priv, new_pub)
    with env.open(checkpoint_every=4, rotate_bytes=3000) as log:
        for i in range(20):
            log.append("exec", {"i": i})
        log.rotate_key(new_priv)
        assert not env.priv.exists()  # the old private key was destroyed
        for i in range(20):
            log.append("exec", {"i": i})
    rep = env.verify()
    assert rep.ok, rep.problems
    assert len(rep.keys) == 2
    assert env.verify(trust=new_pub).ok
    with AuditLog.open(env.log_dir, signing_key=new_priv, witness=env.witness) as log:
        log.append("exec", {"after": "reopen"})
    assert env.verify().ok


def test_checkpoint_by_time(env: Env) -> None:
    with env.open(checkpoint_every=1000, checkpoint_interval_s=0.0) as log:
        for i in range(5):
            log.append("exec", {"i": i})
    types = [rec_of(line)["type"] for line in read_lines(env.live())]
    assert types.count("log.checkpoint") >= 5
    assert env.verify().ok


def test_uncovered_tail_is_a_warning(env: Env) -> None:
    log = env.open(checkpoint_every=1000)
    for i in range(5):
        log.append("exec", {"i": i})
    rep = env.verify()
    assert rep.ok
    (w,) = [w for w in rep.warnings if w.kind == "uncovered_tail"]
    assert "5 records" in w.message and "bytes" in w.message
    log.close()
    assert not [w for w in env.verify().warnings if w.kind == "uncovered_tail"]


def test_rotation_and_prune(env: Env) -> None:
    with env.open(checkpoint_every=5, rotate_bytes=2500) as log:
        for i in range(60):
            log.append("exec", {"i": i})
        segs = sorted(env.log_dir.glob("*.jsonl.gz"))
        assert len(segs) >= 3
        manifest = json.loads(
            segs[0].with_name(segs[0].name.replace(".jsonl.gz", ".manifest.json")).read_text()
        )
        assert manifest["first_seq"] == 0 and "sig" in manifest
        assert env.verify().ok
        import time

        pruned = log.prune(now=time.time() + 31 * 86400)
        assert pruned and all(not (env.log_dir / p).exists() for p in pruned)
        log.append("exec", {"after": "prune"})
    rep = env.verify()
    assert rep.ok, rep.problems
    assert set(rep.pruned_segments) == set(pruned)
    with env.open(checkpoint_every=5) as log:
        assert log.prune() == []  # retention not reached for the remaining segments


def test_explicit_rotate_and_reopen(env: Env) -> None:
    env.fill(10)
    with env.open() as log:
        assert log.rotate() is not None
        assert log.rotate() is None  # fresh segment: nothing to close
        log.append("exec", {"x": 1})
    assert env.verify().ok


def test_strict_mode_raises_named_error(env: Env) -> None:
    env.fill(5)
    live = env.live()
    live.write_bytes(live.read_bytes().replace(b'"i":2', b'"i":3', 1))
    rep = env.verify()
    with pytest.raises(VerificationError) as ei:
        rep.raise_for_problems()
    assert type(ei.value).__name__ == "HashMismatchError"


def test_verify_cannot_run(tmp_path: Path, env: Env) -> None:
    from cellblock.audit import VerificationNotPossible

    with pytest.raises(VerificationNotPossible):
        verify(tmp_path / "nope", trust_root=env.pub)
    env.fill(1)
    with pytest.raises(VerificationNotPossible):
        verify(env.log_dir, trust_root="ed25519:xyz")


def test_report_to_dict_is_json(env: Env) -> None:
    env.fill(3)
    d = env.verify().to_dict()
    assert json.loads(json.dumps(d))["ok"] is True
