"""Mutation fuzzing: every random byte or line mutation of a valid log is detected, and clean
logs (rotated, pruned, re-keyed, crash-recovered) never raise a false alarm."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from cellblock.audit import generate_keypair, verify

from ._util import Env

# Mutated logs per flavour (~2,400 in all); segmented logs cost more signatures to verify.
N_MUTATIONS = {"plain": 1500, "rotated": 300, "pruned": 300, "rekeyed": 300}


def _build(env: Env, flavour: str) -> None:
    if flavour == "plain":
        env.fill(25, checkpoint_every=4)
    elif flavour == "rotated":
        env.fill(40, checkpoint_every=4, rotate_bytes=2000)
    elif flavour == "pruned":
        env.fill(40, checkpoint_every=4, rotate_bytes=2000)
        with env.open(checkpoint_every=4) as log:
            assert log.prune(now=time.time() + 60 * 86400)
    elif flavour == "rekeyed":
        npriv, npub = env.root / "keys" / "n.key", env.root / "keys" / "n.pub"
        generate_keypair(npriv, npub)
        with env.open(checkpoint_every=4, rotate_bytes=2500) as log:
            for i in range(15):
                log.append("exec", {"i": i})
            log.rotate_key(npriv)
            for i in range(15):
                log.append("exec", {"i": i})
        env.priv = npriv
    elif flavour == "recovered":
        env.fill(15, checkpoint_every=4)
        with env.live().open("ab") as fh:
            fh.write(b'{"hash":"00ab')  # a torn write
        env.fill(5, checkpoint_every=4)
    rep = env.verify()
    assert rep.ok, (flavour, rep.problems)


def _files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.name.startswith("seg-"))


def _mutate(rng: random.Random, d: Path, originals: dict[Path, bytes]) -> str:
    target = rng.choice(sorted(originals))
    data = bytearray(originals[target])
    op = rng.choice(
        [
            "flip",
            "set",
            "insert",
            "delete",
            "line_del",
            "line_dup",
            "line_swap",
            "truncate",
            "file_del",
        ]
    )
    if op in ("flip", "set", "insert", "delete") and data:
        i = rng.randrange(len(data))
        if op == "flip":
            data[i] ^= 1 << rng.randrange(8)
        elif op == "set":
            new = rng.randrange(256)
            if new == data[i]:
                new = (new + 1) % 256
            data[i] = new
        elif op == "insert":
            data.insert(i, rng.randrange(256))
        else:
            del data[i]
    elif op == "truncate" and data:
        del data[rng.randrange(len(data)) :]
    elif op == "file_del":
        target.unlink()
        return f"{op} {target.name}"
    else:
        if target.name.endswith(".gz") or target.name.endswith(".manifest.json"):
            data[rng.randrange(len(data))] ^= 0x20
        else:
            lines = bytes(data).splitlines(keepends=True)
            if len(lines) < 2:
                data[0] ^= 1
            else:
                i, j = rng.sample(range(len(lines)), 2)
                if op == "line_del":
                    del lines[i]
                elif op == "line_dup":
                    lines.insert(j, lines[i])
                else:
                    lines[i], lines[j] = lines[j], lines[i]
                data = bytearray(b"".join(lines))
    target.write_bytes(bytes(data))
    return f"{op} {target.name}"


@pytest.mark.parametrize("flavour", ["plain", "rotated", "pruned", "rekeyed"])
def test_every_mutation_is_detected(env: Env, flavour: str) -> None:
    _build(env, flavour)
    rng = random.Random(flavour)
    originals = {p: p.read_bytes() for p in _files(env.log_dir)}
    missed: list[str] = []
    for _ in range(N_MUTATIONS[flavour]):
        for p, data in originals.items():  # restore only what the last mutation touched
            if not p.exists() or p.stat().st_size != len(data) or p.read_bytes() != data:
                p.write_bytes(data)
        what = _mutate(rng, env.log_dir, originals)
        try:
            rep = env.verify()
        except Exception as exc:  # verification must never crash on hostile input
            missed.append(f"{what}: verifier crashed: {exc!r}")
            continue
        if rep.ok:
            missed.append(what)
    assert not missed, missed[:10]


@pytest.mark.parametrize("flavour", ["plain", "rotated", "pruned", "rekeyed", "recovered"])
def test_no_false_alarms(env: Env, flavour: str) -> None:
    _build(env, flavour)
    for _ in range(3):  # reopen/close cycles must stay clean too
        env.fill(3, checkpoint_every=4)
        rep = verify(env.log_dir, trust_root=env.pub, witness=env.witness)
        assert rep.ok and not [w for w in rep.warnings if w.kind != "recovered"], rep
    if flavour == "recovered":
        assert any(w.kind == "recovered" for w in rep.warnings)
