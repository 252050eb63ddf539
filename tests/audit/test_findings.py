"""Recovery inside the witnessed part, the quarantine evidence, and where and in which order
problems are reported (kind, file, offset, seq; the most telling first). Real tampered logs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cellblock.audit import AuditLog, LogCorruptedError, VerificationReport, generate_keypair

from ._util import Env, kinds, read_lines, rec_of, write_lines


def _located(rep: VerificationReport) -> None:
    for p in rep.problems:
        assert None not in (p.file, p.offset, p.seq), p


def _tear_last(env: Env, n: int = 1) -> tuple[int, int]:
    """Cut the last ``n`` records, the first of them in half; return its (offset, seq)."""
    lines = read_lines(env.live())
    keep, cut = lines[:-n], lines[-n:]
    write_lines(env.live(), [*keep, cut[0][: len(cut[0]) // 2]])
    return sum(map(len, keep)), rec_of(cut[0])["seq"]


def test_torn_witnessed_checkpoint_is_refused_not_recovered(env: Env) -> None:
    env.fill(12)
    assert rec_of(read_lines(env.live())[-1])["type"] == "log.checkpoint"  # the witnessed one
    offset, seq = _tear_last(env)
    before = env.live().read_bytes()
    with pytest.raises(LogCorruptedError, match="inside the witnessed part"):
        env.open()
    assert env.live().read_bytes() == before  # the evidence is untouched
    assert not (env.log_dir / "quarantine").exists()
    rep = env.verify()
    first = rep.problems[0]
    assert (first.kind, first.file, first.offset, first.seq) == (
        "truncation",
        env.live().name,
        offset,
        seq,
    )
    _located(rep)


def test_torn_tail_after_the_witnessed_part_still_recovers(env: Env) -> None:
    env.fill(12)
    with env.live().open("ab") as fh:
        fh.write(b'{"hash":"0123')  # a crash mid-write of a record nobody witnessed
    with env.open() as log:
        assert len(log.recoveries) == 1
    rep = env.verify()
    assert rep.ok and {w.kind for w in rep.warnings} >= {"recovered"}, rep.problems


@pytest.mark.parametrize("cut", [1, 4])
def test_recovery_without_the_witness_is_reported_as_truncation(env: Env, cut: int) -> None:
    env.fill(12)
    offset, _ = _tear_last(env, cut)
    with env.open(witness=None) as log:  # the writer cannot know what the witness saw
        (info,) = log.recoveries
    env.fill(3, witness=None)
    lines = read_lines(env.live())
    at = next(i for i, line in enumerate(lines) if rec_of(line)["type"] == "log.recovered")
    rep = env.verify()
    first = rep.problems[0]
    assert (first.kind, first.file, first.offset, first.seq) == (
        "truncation",
        env.live().name,
        sum(map(len, lines[:at])),
        rec_of(lines[at])["seq"],
    ), rep.problems
    assert info["moved_to"] in first.message and f"offset {offset} " in first.message
    assert "fork" not in kinds(rep)
    _located(rep)


def test_quarantined_bytes_must_stay(env: Env) -> None:
    env.fill(12)
    with env.live().open("ab") as fh:
        fh.write(b'{"hash":"0123')
    with env.open() as log:
        (info,) = log.recoveries
    assert env.verify().ok
    recovered = next(
        (i, rec_of(line)["seq"])
        for i, line in enumerate(read_lines(env.live()))
        if rec_of(line)["type"] == "log.recovered"
    )
    where = (env.live().name, sum(map(len, read_lines(env.live())[: recovered[0]])), recovered[1])
    qfile = env.log_dir / info["moved_to"]
    saved = qfile.read_bytes()

    def first() -> tuple[str, str | None, int | None, int | None, str]:
        rep = env.verify()
        assert not rep.ok
        p = rep.problems[0]
        return str(p.kind), p.file, p.offset, p.seq, p.message

    qfile.write_bytes(b"something else")
    kind, *loc, msg = first()
    assert (kind, *loc) == ("missing_quarantine", *where) and "does not hold" in msg
    qfile.unlink()
    kind, *loc, msg = first()
    assert (kind, *loc) == ("missing_quarantine", *where) and "is gone" in msg
    outside = env.root / "q.tail"
    outside.write_bytes(saved)
    qfile.symlink_to(outside)  # the same bytes, but not in the log directory
    kind, *loc, msg = first()
    assert (kind, *loc) == ("missing_quarantine", *where) and "symbolic link" in msg


def test_rollback_to_before_a_key_rotation_is_reported_as_rollback(env: Env) -> None:
    env.fill(20)
    snap = env.root / "snapshot"
    shutil.copytree(env.log_dir, snap)
    npriv, npub = env.root / "keys" / "n.key", env.root / "keys" / "n.pub"
    generate_keypair(npriv, npub)
    with env.open(checkpoint_every=10) as log:
        log.rotate_key(npriv, destroy_old=False)
    with AuditLog.open(env.log_dir, signing_key=npriv, witness=env.witness) as log:
        log.append("exec", {"after": "rekey"})
    shutil.rmtree(env.log_dir)
    shutil.copytree(snap, env.log_dir)
    size = len(read_lines(env.live()))
    for trust in (npub, env.pub):  # pinned to the new key, or to the old one
        rep = env.verify(trust=trust)
        first = rep.problems[0]
        assert (first.kind, first.file, first.offset, first.seq) == (
            "rollback",
            env.live().name,
            env.live().stat().st_size,
            size,
        ), rep.problems
        _located(rep)
    assert kinds(env.verify(trust=env.pub)) == {"rollback"}


def _rotated(env: Env) -> list[Path]:
    env.fill(80, rotate_bytes=2500, checkpoint_every=5)
    return sorted(env.log_dir.glob("*.jsonl.gz"))


def test_missing_segments_are_located(env: Env) -> None:
    gz = _rotated(env)
    snap = env.root / "snapshot"
    shutil.copytree(env.log_dir, snap)

    def restore() -> None:
        shutil.rmtree(env.log_dir)
        shutil.copytree(snap, env.log_dir)

    gz[1].unlink()
    rep = env.verify()
    assert rep.problems[0].kind == "missing_segment" and rep.problems[0].file == gz[1].name
    _located(rep)
    gz[1].with_name(gz[1].name.replace(".jsonl.gz", ".manifest.json")).unlink()
    rep = env.verify()
    assert rep.problems[0].kind == "missing_segment"
    _located(rep)
    restore()
    live = env.live()
    live.unlink()
    rep = env.verify()
    assert rep.problems[0].kind == "missing_segment" and rep.problems[0].file == live.name
    assert "truncation" in kinds(rep)
    _located(rep)
    restore()
    for p in env.log_dir.glob("seg-*"):
        p.unlink()
    rep = env.verify()
    assert [str(p.kind) for p in rep.problems] == ["truncation"]
    _located(rep)
