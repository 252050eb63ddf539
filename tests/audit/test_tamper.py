"""The tamper matrix: each attack on real files, asserted detected and correctly named."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cellblock.audit import AuditLog, generate_keypair
from cellblock.audit._format import canonical
from cellblock.audit._keys import load_private, sign_payload

from ._util import Env, encode, kinds, read_lines, rec_of, rechain, write_lines


def _user_idx(lines: list[bytes], nth: int) -> int:
    """Index of the nth user (non-log.*) record."""
    idx = [i for i, line in enumerate(lines) if not rec_of(line)["type"].startswith("log.")]
    return idx[nth]


def _edit(lines: list[bytes], i: int, **payload: object) -> bytes:
    rec = json.loads(lines[i])["record"]
    rec["payload"].update(payload)
    return encode(rec)[0]


def _live_attack(fn: Callable[[list[bytes]], list[bytes]]) -> Callable[[Env], None]:
    def attack(env: Env) -> None:
        path = env.live()
        write_lines(path, fn(read_lines(path)))

    return attack


def edit_field(lines: list[bytes]) -> list[bytes]:
    i = _user_idx(lines, 5)
    lines[i] = lines[i].replace(b'"who":"alice"', b'"who":"mallory"')
    return lines


def edit_and_rehash_one(lines: list[bytes]) -> list[bytes]:
    i = _user_idx(lines, 5)
    lines[i] = _edit(lines, i, who="mallory")
    return lines


def edit_and_rechain_rest(lines: list[bytes]) -> list[bytes]:
    i = _user_idx(lines, 5)
    lines[i] = _edit(lines, i, who="mallory")
    return rechain(lines, i + 1)


def formatting_only(lines: list[bytes]) -> list[bytes]:
    i = _user_idx(lines, 5)
    lines[i] = lines[i].replace(b'"who":"alice"', b'"who": "alice"')
    return lines


def delete_record(lines: list[bytes]) -> list[bytes]:
    del lines[_user_idx(lines, 5)]
    return lines


def delete_range_and_rechain(lines: list[bytes]) -> list[bytes]:
    i = _user_idx(lines, 5)
    del lines[i : i + 4]
    return rechain(lines, i, renumber=True)


def insert_forged(lines: list[bytes]) -> list[bytes]:
    i = _user_idx(lines, 5)
    rec = json.loads(lines[i])["record"]
    rec["payload"] = {"i": -1, "who": "mallory", "code": "rm -rf /"}
    lines.insert(i, encode(rec)[0])  # same seq and prev as the real record: a valid-looking twin
    return lines


def insert_forged_and_rechain(lines: list[bytes]) -> list[bytes]:
    lines = insert_forged(lines)
    return rechain(lines, _user_idx(lines, 5) + 1, renumber=True)


def replay_record(lines: list[bytes]) -> list[bytes]:
    lines.insert(_user_idx(lines, 9), lines[_user_idx(lines, 3)])
    return lines


def swap_records(lines: list[bytes]) -> list[bytes]:
    i, j = _user_idx(lines, 4), _user_idx(lines, 5)
    lines[i], lines[j] = lines[j], lines[i]
    return lines


def truncate_at_line(lines: list[bytes]) -> list[bytes]:
    return lines[:-3]


def truncate_mid_line(lines: list[bytes]) -> list[bytes]:
    return [*lines[:-2], lines[-2][:40]]


def _cp_idx(lines: list[bytes], nth: int) -> int:
    return [i for i, line in enumerate(lines) if rec_of(line)["type"] == "log.checkpoint"][nth]


def tamper_checkpoint(lines: list[bytes]) -> list[bytes]:
    i = _cp_idx(lines, 2)
    rec = json.loads(lines[i])["record"]
    rec["payload"]["size"] -= 1
    lines[i] = encode(rec)[0]
    return rechain(lines, i + 1)


def delete_checkpoints(lines: list[bytes]) -> list[bytes]:
    keep = [ln for i, ln in enumerate(lines) if i < 2 or rec_of(ln)["type"] != "log.checkpoint"]
    return rechain(keep, 2, renumber=True)


def strip_signature(lines: list[bytes]) -> list[bytes]:
    i = _cp_idx(lines, 2)
    rec = json.loads(lines[i])["record"]
    del rec["payload"]["sig"]
    lines[i] = encode(rec)[0]
    return rechain(lines, i + 1)


def downgrade_signature(lines: list[bytes]) -> list[bytes]:
    i = _cp_idx(lines, 2)
    rec = json.loads(lines[i])["record"]
    rec["payload"]["alg"] = "none"
    lines[i] = encode(rec)[0]
    return rechain(lines, i + 1)


LIVE_ATTACKS: list[tuple[Callable[[list[bytes]], list[bytes]], set[str]]] = [
    (edit_field, {"hash_mismatch"}),
    (edit_and_rehash_one, {"chain_break"}),
    (edit_and_rechain_rest, {"checkpoint_mismatch"}),
    (formatting_only, {"hash_mismatch"}),
    (delete_record, {"seq_gap"}),
    (delete_range_and_rechain, {"checkpoint_mismatch"}),
    (insert_forged, {"fork"}),
    (insert_forged_and_rechain, {"checkpoint_mismatch"}),
    (replay_record, {"duplicate"}),
    (swap_records, {"reordering"}),
    (truncate_at_line, {"truncation"}),
    (truncate_mid_line, {"truncation"}),
    (tamper_checkpoint, {"bad_signature"}),
    (delete_checkpoints, {"missing_checkpoint"}),
    (strip_signature, {"bad_signature"}),
    (downgrade_signature, {"bad_signature"}),
]


@pytest.mark.parametrize(
    ("attack", "expected"), LIVE_ATTACKS, ids=lambda a: getattr(a, "__name__", "")
)
def test_live_segment_attack(
    env: Env, attack: Callable[[list[bytes]], list[bytes]], expected: set[str]
) -> None:
    env.fill(40)
    assert env.verify().ok
    _live_attack(attack)(env)
    rep = env.verify()
    assert not rep.ok
    assert expected <= kinds(rep), rep.problems
    named = next(p for p in rep.problems if str(p.kind) in expected)
    # every problem says where: file, offset and seq
    assert all(None not in (p.file, p.offset, p.seq) for p in rep.problems), rep.problems
    if str(named.kind) in {
        "hash_mismatch",
        "chain_break",
        "seq_gap",
        "duplicate",
        "reordering",
        "fork",
        "bad_signature",
    }:
        assert named.offset is not None and named.seq is not None


def test_hash_mismatch_names_offset_and_seq(env: Env) -> None:
    env.fill(20)
    lines = read_lines(env.live())
    i = _user_idx(lines, 5)
    seq = rec_of(lines[i])["seq"]
    lines[i] = lines[i].replace(b'"who":"alice"', b'"who":"mallory"')
    write_lines(env.live(), lines)
    (p,) = env.verify().problems
    assert (str(p.kind), p.file, p.offset, p.seq) == (
        "hash_mismatch",
        env.live().name,
        sum(len(x) for x in lines[:i]),
        seq,
    )


def test_rollback_to_older_copy(env: Env) -> None:
    env.fill(20)
    snap = env.root / "snapshot"
    shutil.copytree(env.log_dir, snap)
    env.fill(20)
    shutil.rmtree(env.log_dir)
    shutil.copytree(snap, env.log_dir)
    assert "rollback" in kinds(env.verify())


def test_replace_whole_log_under_new_key(env: Env) -> None:
    env.fill(20)
    shutil.rmtree(env.log_dir)
    mpriv, mpub = env.root / "m.key", env.root / "m.pub"
    generate_keypair(mpriv, mpub)
    with AuditLog.open(env.log_dir, signing_key=mpriv, checkpoint_every=10) as log:
        for i in range(20):
            log.append("exec", {"i": i, "who": "alice"})
    assert "unknown_key" in kinds(env.verify(witness=False))
    assert {"unknown_key", "fork"} <= kinds(env.verify())


def test_checkpoint_signed_by_stolen_other_key(env: Env) -> None:
    env.fill(20)
    mpriv, mpub = env.root / "m.key", env.root / "m.pub"
    generate_keypair(mpriv, mpub)
    lines = read_lines(env.live())
    i = _cp_idx(lines, 1)
    rec = json.loads(lines[i])["record"]
    rec["payload"] = sign_payload(load_private(mpriv), rec["payload"])
    lines[i] = encode(rec)[0]
    write_lines(env.live(), rechain(lines, i + 1))
    assert "bad_signature" in kinds(env.verify())


def test_old_key_cannot_sign_after_rotation(env: Env) -> None:
    old = load_private(env.priv)  # the attacker stole it before rotation
    npriv, npub = env.root / "n.key", env.root / "n.pub"
    generate_keypair(npriv, npub)
    with env.open(checkpoint_every=5) as log:
        for i in range(10):
            log.append("exec", {"i": i})
        log.rotate_key(npriv)
        for i in range(10):
            log.append("exec", {"i": i})
    lines = read_lines(env.live())
    i = len(lines) - 1
    rec = json.loads(lines[i])["record"]
    payload = dict(rec["payload"])
    payload["key"] = "ed25519:" + "0" * 64
    from cellblock.audit._keys import key_id

    payload["key"] = key_id(old.public_key())
    rec["payload"] = sign_payload(old, payload)
    lines[i] = encode(rec)[0]
    write_lines(env.live(), lines)
    assert "unknown_key" in kinds(env.verify())


# -- rotated segments ------------------------------------------------------------------------


def _rotated(env: Env) -> list[Path]:
    env.fill(80, rotate_bytes=2500, checkpoint_every=5)
    gz = sorted(env.log_dir.glob("*.jsonl.gz"))
    assert len(gz) >= 4 and env.verify().ok
    return gz


@pytest.fixture(autouse=True)
def _every_problem_is_located(env: Env) -> Iterator[None]:
    """After each attack here: every problem names its file, offset and seq."""
    yield
    if env.log_dir.is_dir():
        for p in env.verify().problems:
            assert None not in (p.file, p.offset, p.seq), p


def test_delete_rotated_segment(env: Env) -> None:
    gz = _rotated(env)
    gz[1].unlink()
    rep = env.verify()
    assert "missing_segment" in kinds(rep)
    assert any(p.file == gz[1].name for p in rep.problems)


def test_delete_segment_and_manifest(env: Env) -> None:
    gz = _rotated(env)
    gz[1].unlink()
    gz[1].with_name(gz[1].name.replace(".jsonl.gz", ".manifest.json")).unlink()
    assert "missing_segment" in kinds(env.verify())


def test_duplicate_rotated_segment(env: Env) -> None:
    gz = _rotated(env)
    shutil.copyfile(gz[0], gz[1])
    assert "duplicate" in kinds(env.verify())


def test_swap_rotated_segments(env: Env) -> None:
    gz = _rotated(env)
    a, b = gz[1].read_bytes(), gz[2].read_bytes()
    gz[1].write_bytes(b)
    gz[2].write_bytes(a)
    assert "reordering" in kinds(env.verify())


def test_edit_inside_rotated_segment(env: Env) -> None:
    import gzip

    gz = _rotated(env)
    data = gzip.decompress(gz[1].read_bytes()).replace(b'"who":"alice"', b'"who":"mallory"', 1)
    gz[1].write_bytes(gzip.compress(data))
    k = kinds(env.verify())
    assert {"manifest_mismatch", "hash_mismatch"} <= k


def test_tamper_manifest(env: Env) -> None:
    gz = _rotated(env)
    mpath = gz[1].with_name(gz[1].name.replace(".jsonl.gz", ".manifest.json"))
    m = json.loads(mpath.read_bytes())
    m["count"] += 1
    mpath.write_bytes(canonical(m) + b"\n")
    assert {"bad_signature", "manifest_mismatch"} <= kinds(env.verify())


def test_delete_live_segment(env: Env) -> None:
    _rotated(env)
    env.live().unlink()
    assert {"missing_segment", "truncation"} & kinds(env.verify())


def test_prune_without_authority(env: Env) -> None:
    gz = _rotated(env)
    gz[0].unlink()
    lines = read_lines(env.live())
    last = rec_of(lines[-1])
    forged_payload = {
        "log": last["log"],
        "segments": [{"segment": gz[0].name, "gz_sha256": "0" * 64}],
        "retention_days": 30,
        "ts": last["ts"],
        "key": "ed25519:" + "0" * 64,
        "alg": "ed25519",
        "sig": "00" * 64,
    }
    forged = dict(
        last, seq=last["seq"] + 1, prev=encode(last)[1], type="log.prune", payload=forged_payload
    )
    lines.append(encode(forged)[0])
    write_lines(env.live(), lines)
    k = kinds(env.verify())
    assert {"unauthorised_prune", "missing_segment"} <= k


def test_authorised_prune_is_not_a_problem(env: Env) -> None:
    import time

    _rotated(env)
    with env.open(checkpoint_every=5) as log:
        pruned = log.prune(now=time.time() + 40 * 86400)
    rep = env.verify()
    assert pruned and rep.ok, rep.problems
    assert set(pruned) == set(rep.pruned_segments)
