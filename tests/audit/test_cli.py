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
