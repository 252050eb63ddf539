"""`cellblock audit verify-fleet` on bad input: one sentence, exit 2, JSON when asked; no Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cellblock.audit import AuditLog, generate_keypair
from cellblock.cli import main


@pytest.fixture
def dispatcher(tmp_path: Path) -> tuple[Path, Path]:
    key, pub = tmp_path / "d.key", tmp_path / "d.pub"
    generate_keypair(key, pub)
    with AuditLog.open(tmp_path / "dispatcher", signing_key=key) as log:
        log.append("fleet.nodes", {"version": 1})
    return tmp_path / "dispatcher", pub


def run(capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main(["audit", "verify-fleet", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_bad_node_log_argument(dispatcher, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    d, pub = dispatcher
    (tmp_path / "nodes.json").write_text("{}")
    base = [
        "--audit-dir",
        str(d),
        "--trust-root",
        str(pub),
        "--node-list",
        str(tmp_path / "nodes.json"),
    ]
    code, out, err = run(capsys, *base, "--node-log", "just-a-dir")
    assert code == 2 and "NAME=DIR" in err and "Traceback" not in err
    code, out, err = run(capsys, *base, "--node-log", "a", "--json")
    assert code == 2 and json.loads(out)["ok"] is False and "NAME=DIR" in json.loads(out)["error"]


def test_missing_or_unreadable_node_list(dispatcher, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    d, pub = dispatcher
    base = ["--audit-dir", str(d), "--trust-root", str(pub)]
    code, out, err = run(capsys, *base, "--node-list", str(tmp_path / "absent.json"))
    assert code == 2 and "cannot read the node list" in err
    (tmp_path / "bad.json").write_text("{not json")
    code, out, err = run(capsys, *base, "--node-list", str(tmp_path / "bad.json"), "--json")
    assert code == 2 and "not JSON" in json.loads(out)["error"]


def test_a_node_list_that_is_not_one_is_a_problem(dispatcher, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    d, pub = dispatcher
    (tmp_path / "nodes.json").write_text(json.dumps({"kind": "something else"}))
    code, out, err = run(
        capsys,
        "--audit-dir",
        str(d),
        "--trust-root",
        str(pub),
        "--node-list",
        str(tmp_path / "nodes.json"),
        "--json",
    )
    assert code == 1
    assert [p["kind"] for p in json.loads(out)["problems"]] == ["node_list_invalid"]


def test_no_dispatcher_log(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    key, pub = tmp_path / "d.key", tmp_path / "d.pub"
    generate_keypair(key, pub)
    (tmp_path / "nodes.json").write_text("{}")
    code, out, err = run(
        capsys,
        "--audit-dir",
        str(tmp_path / "none"),
        "--trust-root",
        str(pub),
        "--node-list",
        str(tmp_path / "nodes.json"),
    )
    assert code == 2 and "does not exist" in err and "Traceback" not in err
