"""Signing keys: first use under concurrency, and what generate/ensure refuse."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cellblock.audit import (
    AuditKeyError,
    ensure_keypair,
    generate_keypair,
    key_id,
    load_public,
    verify,
)

# Each racer waits for the start file, then does what `cellblock run` does before it starts a
# container: build a Pipeline (which creates the key pair on first use and opens the log).
_RACER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from cellblock.pipeline import Pipeline
    go = Path(sys.argv[1])
    while not go.exists():
        time.sleep(0.001)
    with Pipeline(audit_dir=Path(sys.argv[2])) as p:
        p.audit.append("test.race", {"pid": os.getpid()})
        print(p.audit.key_id)
    """
)


def _race(
    tmp_path: Path, n: int, script: str, *args: str
) -> list[subprocess.CompletedProcess[str]]:
    go = tmp_path / "go"
    env = dict(os.environ, CELLBLOCK_AUDIT_KEY_DIR=str(tmp_path / "keys"))
    env.pop("CELLBLOCK_AUDIT_DIR", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(go), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    time.sleep(3.0)  # let every racer import and reach the start line (a late one still races)
    go.touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


@pytest.mark.timeout(400)
def test_first_use_race_all_processes_share_one_key(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    results = _race(tmp_path, 8, _RACER, str(log_dir))
    for r in results:
        assert r.returncode == 0, r.stderr
    ids = {r.stdout.strip() for r in results}
    assert len(ids) == 1, ids
    (kid,) = ids
    priv, pub = tmp_path / "keys" / "audit-signing.key", tmp_path / "keys" / "audit-signing.pub"
    assert key_id(load_public(pub)) == kid
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert sorted(p.name for p in priv.parent.iterdir()) == [priv.name, pub.name]  # no temp left
    rep = verify(log_dir, trust_root=pub)
    assert rep.ok, rep.problems


_ENSURE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from cellblock.audit import ensure_keypair
    go = Path(sys.argv[1])
    while not go.exists():
        time.sleep(0.0005)
    print(ensure_keypair(Path(sys.argv[2]), Path(sys.argv[3])))
    """
)


@pytest.mark.timeout(300)
def test_ensure_keypair_race_library(tmp_path: Path) -> None:
    priv, pub = tmp_path / "k" / "a.key", tmp_path / "k" / "a.pub"
    results = _race(tmp_path, 16, _ENSURE, str(priv), str(pub))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert {r.stdout.strip() for r in results} == {key_id(load_public(pub))}


def test_ensure_keypair_refuses_mismatched_or_orphan_public(tmp_path: Path) -> None:
    a_priv, a_pub = tmp_path / "a.key", tmp_path / "a.pub"
    b_priv, b_pub = tmp_path / "b.key", tmp_path / "b.pub"
    kid = generate_keypair(a_priv, a_pub)
    generate_keypair(b_priv, b_pub)
    assert ensure_keypair(a_priv, a_pub) == kid  # existing pair: used as is
    with pytest.raises(AuditKeyError, match="does not hold the public key"):
        ensure_keypair(a_priv, b_pub)
    b_priv.unlink()
    with pytest.raises(AuditKeyError, match="exists but its private key"):
        ensure_keypair(b_priv, b_pub)
    a_pub.unlink()  # a lost public key is recreated from the private key
    assert ensure_keypair(a_priv, a_pub) == kid and key_id(load_public(a_pub)) == kid


def test_generate_keypair_still_refuses_to_overwrite(tmp_path: Path) -> None:
    priv, pub = tmp_path / "a.key", tmp_path / "a.pub"
    generate_keypair(priv, pub)
    before = priv.read_bytes()
    with pytest.raises(AuditKeyError, match="already exists"):
        generate_keypair(priv, tmp_path / "other.pub")
    (tmp_path / "link.key").symlink_to(tmp_path / "nowhere")
    with pytest.raises(AuditKeyError, match="already exists"):
        generate_keypair(tmp_path / "link.key", tmp_path / "l.pub")
    assert priv.read_bytes() == before and not (tmp_path / "nowhere").exists()
