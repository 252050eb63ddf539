"""The token store: hashes only, 0600 files, atomic and race-safe writes, uniform checking."""

from __future__ import annotations

import hmac
import json
import stat
import subprocess
from pathlib import Path

import pytest

from cellblock.service import AuthenticationError, FileTokenStore, Quotas, ServiceInputError
from cellblock.service._cli import check_bind
from tests.service.conftest import CELLBLOCK, REVIEW, cli


def test_only_a_keyed_hash_is_stored_and_files_are_private(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "cfg" / "tokens.json")
    created = store.create("ci", policy="standard", quotas=Quotas(max_concurrent=3))
    secret = created.secret.split("_", 2)[2]
    text = store.path.read_text()
    assert secret not in text and created.secret not in text
    record = json.loads(text)["tokens"][created.info.token_id]
    assert record["alg"] == "hmac-sha256" and len(record["hash"]) == 64
    for path in (store.path, store.path.with_name("tokens.json.key")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    info = store.authenticate(created.secret)
    assert info.token_id == created.info.token_id and info.quotas.max_concurrent == 3
    # a copy of the token file without the key file cannot check anything
    other = FileTokenStore(tmp_path / "elsewhere" / "tokens.json")
    other.path.parent.mkdir()
    other.path.write_text(text)
    with pytest.raises(AuthenticationError):
        other.authenticate(created.secret)


def test_every_failure_costs_one_hmac_and_one_constant_time_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timing must not tell an unknown id from a wrong secret (checked structurally)."""
    store = FileTokenStore(tmp_path / "tokens.json")
    good = store.create("a", policy="standard", quotas=Quotas()).secret
    calls: list[str] = []
    real_new, real_compare = hmac.new, hmac.compare_digest
    monkeypatch.setattr(hmac, "new", lambda *a, **k: calls.append("hmac") or real_new(*a, **k))
    monkeypatch.setattr(
        hmac, "compare_digest", lambda a, b: calls.append("cmp") or real_compare(a, b)
    )
    token_id = good.split("_")[1]
    guesses = [
        good[:-2] + ("AA" if not good.endswith("AA") else "BB"),  # right id, wrong secret
        f"cbt_{'f' * 16}_{'A' * 43}",  # unknown id
        "cbt_short",  # malformed
        "x" * 10_000,  # huge
        f"cbt_{token_id}_{'A' * 43}",
    ]
    for guess in guesses:
        calls.clear()
        with pytest.raises(AuthenticationError):
            store.authenticate(guess)
        assert calls == ["hmac", "cmp"], guess
    for _ in range(300):  # guessing does not get lucky
        with pytest.raises(AuthenticationError):
            store.authenticate(f"cbt_{token_id}_{__import__('secrets').token_urlsafe(32)}")


def test_revocation_is_seen_by_a_running_store(tmp_path: Path) -> None:
    server_side = FileTokenStore(tmp_path / "tokens.json")
    created = server_side.create("a", policy="standard", quotas=Quotas())
    server_side.authenticate(created.secret)
    FileTokenStore(tmp_path / "tokens.json").revoke(created.info.token_id)  # the CLI, elsewhere
    with pytest.raises(AuthenticationError, match="revoked"):
        server_side.authenticate(created.secret)


def test_concurrent_cli_creates_lose_nothing(svc_env: dict[str, str]) -> None:
    procs = [
        subprocess.Popen(
            [CELLBLOCK, "token", "create", f"n{i}", "--policy", REVIEW, "--json"],
            env=svc_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(8)
    ]
    ids = set()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        ids.add(json.loads(out)["id"])
    listed = json.loads(cli(svc_env, "token", "list", "--json").stdout)
    assert {t["id"] for t in listed} == ids and len(ids) == 8
    assert all("hash" not in t and "token" not in t for t in listed)
    leftovers = [
        p.name
        for p in Path(svc_env["CELLBLOCK_TOKENS"]).parent.iterdir()
        if p.name.startswith(".tokens-")
    ]
    assert leftovers == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["token", "revoke", "0123456789abcdef"], "no token has id"),
        (["token", "create", "bad name!"], "is not valid"),
        (["token", "create", "x", "--concurrent", "0"], "max_concurrent"),
        (["token", "create", "x", "--max-output", "lots"], "--max-output"),
        (["token", "create", "x", "--policy", "no-such-policy"], "no-such-policy"),
        (["serve", "--host", "0.0.0.0"], "--allow-remote"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_64(svc_env, args, message) -> None:
    proc = cli(svc_env, *args, check=False)
    assert proc.returncode == 64, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_remote_bind_without_tls_warns(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    args = argparse.Namespace(
        host="0.0.0.0", allow_remote=True, tls_terminator=False, tls_cert=None, tls_key=None
    )
    check_bind(args)
    assert "without TLS" in capsys.readouterr().err
    check_bind(argparse.Namespace(**{**vars(args), "tls_terminator": True}))
    assert capsys.readouterr().err == ""
    with pytest.raises(ServiceInputError):
        check_bind(argparse.Namespace(**{**vars(args), "allow_remote": False}))


def test_image_artifacts_become_mcp_image_content() -> None:
    """The hook for rich outputs: image artifacts on a result become MCP image content."""
    import base64
    import dataclasses

    from cellblock.sandbox.files import Artifact
    from cellblock.service._mcp import render_image_artifacts

    @dataclasses.dataclass
    class Execution:
        artifacts: list[Artifact]

    @dataclasses.dataclass
    class Result:
        execution: Execution | None

    png_bytes = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    png = Artifact.from_bytes("fig.png", png_bytes, kind="figure")
    csv = Artifact.from_bytes("out.csv", b"a,b\n")
    blocks = render_image_artifacts(Result(Execution([png, csv])))  # type: ignore[arg-type]
    assert [(b.type, b.mimeType, base64.b64decode(b.data)) for b in blocks] == [  # type: ignore[union-attr]
        ("image", "image/png", png_bytes)
    ]
    assert render_image_artifacts(Result(None)) == []  # type: ignore[arg-type]
