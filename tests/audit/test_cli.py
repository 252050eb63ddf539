"""The ``cellblock audit`` command line, run in-process through the real dispatcher."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from cellblock.cli import main

from ._util import Env


def test_keygen_verify_show_tail_export(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    priv = tmp_path / "cli" / "k.key"
    assert main(["audit", "keygen", "--private", str(priv)]) == 0
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert "ed25519:" in capsys.readouterr().out
    assert main(["audit", "keygen", "--private", str(priv)]) != 0  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err

    env.fill(12)
    d = ["audit", "--audit-dir", str(env.log_dir)]
    assert (
        main([*d, "verify", "--trust-root", str(env.pub), "--witness", str(env.witness.path)]) == 0
    )
    assert "intact" in capsys.readouterr().out
    assert main([*d, "verify", "--trust-root", str(env.pub), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert main([*d, "show", "--type", "exec"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 12
    assert main([*d, "tail", "-n", "2", "--raw"]) == 0
    assert all(line.startswith('{"hash":"') for line in capsys.readouterr().out.splitlines())
    assert main([*d, "export", "--since", "1h", "--type", "exec"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 12
    assert main([*d, "export", "--since", "2000-01-01T00:00Z", "--until", "2000-01-02"]) == 0
    assert capsys.readouterr().out == ""


def test_verify_exit_codes(env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env.fill(12)
    live = env.live()
    live.write_bytes(live.read_bytes().replace(b'"i":3', b'"i":4', 1))
    d = ["audit", "--audit-dir", str(env.log_dir)]
    assert main([*d, "verify", "--trust-root", str(env.pub), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    (prob,) = report["problems"]
    assert prob["kind"] == "hash_mismatch" and prob["file"] == live.name
    assert isinstance(prob["offset"], int) and isinstance(prob["seq"], int)
    assert (
        main(
            [
                "audit",
                "--audit-dir",
                str(tmp_path / "none"),
                "verify",
                "--trust-root",
                str(env.pub),
                "--json",
            ]
        )
        == 2
    )
    assert json.loads(capsys.readouterr().out)["ok"] is False
    assert main([*d, "verify", "--trust-root", str(tmp_path / "missing.pub")]) == 2
    assert "could not run" in capsys.readouterr().err


def test_rotate_and_prune(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.fill(12)
    d = ["audit", "--audit-dir", str(env.log_dir)]
    assert (
        main([*d, "rotate", "--signing-key", str(env.priv), "--witness", str(env.witness.path)])
        == 0
    )
    assert "closed seg-" in capsys.readouterr().out
    assert (
        main([*d, "prune", "--signing-key", str(env.priv), "--witness", str(env.witness.path)]) == 0
    )
    assert "nothing older" in capsys.readouterr().out
    assert env.verify().ok


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["audit", "--audit-dir", str(tmp_path / "none"), "show"])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("cellblock: error:") and "Traceback" not in err
    code = main(
        ["audit", "--audit-dir", str(tmp_path), "rotate", "--signing-key", str(tmp_path / "nokey")]
    )
    assert code != 0 and "Traceback" not in capsys.readouterr().err


def test_default_dir_from_env(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.fill(2)
    monkeypatch.setenv("CELLBLOCK_AUDIT_DIR", str(env.log_dir))
    assert main(["audit", "verify", "--trust-root", str(env.pub)]) == 0
    assert str(env.log_dir) in capsys.readouterr().out


def test_audit_dir_accepted_before_or_after_the_subcommand(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.fill(12)
    d = str(env.log_dir)
    trust = ["--trust-root", str(env.pub)]
    key = ["--signing-key", str(env.priv), "--witness", str(env.witness.path)]
    for argv in (
        ["audit", "verify", "--audit-dir", d, *trust],
        ["audit", "verify", *trust, "--audit-dir", d, "--json"],
        ["audit", "--audit-dir", d, "verify", *trust],
        # given twice: the one after the subcommand wins
        ["audit", "--audit-dir", str(tmp_path / "none"), "verify", "--audit-dir", d, *trust],
        ["audit", "show", "--audit-dir", d, "--type", "exec"],
        ["audit", "tail", "-n", "1", "--audit-dir", d],
        ["audit", "export", "--since", "1h", "--audit-dir", d],
        ["audit", "rotate", "--audit-dir", d, *key],
        ["audit", "prune", "--audit-dir", d, *key],
        ["audit", "keygen", "--audit-dir", d, "--private", str(tmp_path / "k2" / "x.key")],
    ):
        assert main(argv) == 0, (argv, capsys.readouterr())
        out = capsys.readouterr().out
        if "verify" in argv and "--json" not in argv:
            assert f"{d}: intact" in out, out
    assert main(["audit", "show", "--audit-dir", str(tmp_path / "none")]) != 0


def test_rotate_key_in_place(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    from cellblock.audit import key_id, load_public

    env.fill(12)
    old_id = key_id(load_public(env.pub))
    argv = ["audit", "rotate-key", "--audit-dir", str(env.log_dir), "--signing-key", str(env.priv)]
    assert main([*argv, "--witness", str(env.witness.path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and out["old_key"] == old_id and out["new_key"] != old_id
    assert out["old_key_destroyed"] is True and out["private_key"] == str(env.priv)
    # the new pair sits where the old one was; nothing else is left behind
    assert key_id(load_public(env.pub)) == out["new_key"]
    assert stat.S_IMODE(env.priv.stat().st_mode) == 0o600
    assert sorted(p.name for p in env.priv.parent.iterdir()) == ["a.key", "a.pub"]
    env.fill(5)  # the writer keeps working with the key at the usual path
    rep = env.verify()
    assert rep.ok and rep.keys == (old_id, out["new_key"]), rep.problems
    assert env.verify(trust=old_id).ok  # the old pinned fingerprint still anchors the chain
    # human output
    assert main(argv) == 0
    assert "signing key" in capsys.readouterr().out


def test_rotate_key_to_given_key_and_errors(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cellblock.audit import generate_keypair

    env.fill(3)
    npriv, npub = tmp_path / "n.key", tmp_path / "n.pub"
    new_id = generate_keypair(npriv, npub)
    base = ["audit", "rotate-key", "--audit-dir", str(env.log_dir)]
    assert main([*base, "--signing-key", str(env.priv), "--new-key", str(npriv), "--keep-old"]) == 0
    assert new_id in capsys.readouterr().out and env.priv.exists()
    assert env.verify(trust=npub).ok
    # the old key is no longer the log's key: one sentence, exit 78, JSON when asked
    assert main([*base, "--signing-key", str(env.priv), "--json"]) == 78
    err = json.loads(capsys.readouterr().out)
    assert err["ok"] is False and "not this log's current key" in err["error"]
    assert main([*base, "--signing-key", str(tmp_path / "missing.key")]) == 78
    captured = capsys.readouterr()
    assert captured.err.startswith("cellblock: error:") and "Traceback" not in captured.err


def test_rotate_key_interrupted_is_finished_by_rerun(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    from cellblock.audit import generate_keypair, key_id, load_public

    env.fill(3)
    nxt, pub_nxt = env.priv.with_name("a.key.next"), env.pub.with_name("a.pub.next")
    new_id = generate_keypair(nxt, pub_nxt)
    with env.open() as log:  # the announcement happened, then the run died before the moves
        log.rotate_key(nxt, destroy_old=False)
    argv = ["audit", "rotate-key", "--audit-dir", str(env.log_dir), "--signing-key", str(env.priv)]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["resumed"] is True and out["new_key"] == new_id
    assert key_id(load_public(env.pub)) == new_id and not nxt.exists()
    env.fill(2)
    assert env.verify().ok
