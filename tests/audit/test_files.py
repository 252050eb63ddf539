"""Log files that are not regular files inside the directory: links, FIFOs, directories.

Writer and verifier open only regular files, never follow a link and never block on a FIFO.
Hanging cases run in a subprocess with a deadline, so a regression fails instead of hanging.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from cellblock.audit import LogCorruptedError, WitnessError
from cellblock.cli import main

from ._util import Env, kinds


def _first_unsafe(env: Env) -> tuple[str, str | None, int | None]:
    rep = env.verify()
    assert not rep.ok
    first = rep.problems[0]
    return str(first.kind), first.file, first.offset


def test_live_segment_linked_to_identical_copy_outside(env: Env) -> None:
    env.fill(12)
    live = env.live()
    outside = env.root / "elsewhere.jsonl"
    shutil.copyfile(live, outside)
    live.unlink()
    live.symlink_to(outside)
    assert _first_unsafe(env) == ("unsafe_file", live.name, 0)
    before = outside.read_bytes()
    with pytest.raises(LogCorruptedError, match="is a symbolic link"):
        env.open()
    # the CLI's rotate refuses too, and nothing is appended to the file outside the directory
    argv = ["audit", "--audit-dir", str(env.log_dir), "rotate", "--signing-key", str(env.priv)]
    assert main(argv) != 0
    assert outside.read_bytes() == before


def test_closed_segment_and_manifest_links(env: Env) -> None:
    env.fill(80, rotate_bytes=2500, checkpoint_every=5)
    gz = sorted(env.log_dir.glob("*.jsonl.gz"))
    copy = env.root / "copy.gz"
    shutil.copyfile(gz[1], copy)
    gz[1].unlink()
    gz[1].symlink_to(copy)
    rep = env.verify()
    assert rep.problems[0].kind == "unsafe_file" and rep.problems[0].file == gz[1].name
    manifest = gz[2].with_name(gz[2].name.replace(".jsonl.gz", ".manifest.json"))
    mcopy = env.root / "copy.manifest.json"
    shutil.copyfile(manifest, mcopy)
    manifest.unlink()
    manifest.symlink_to(mcopy)
    unsafe = {p.file for p in env.verify().problems if p.kind == "unsafe_file"}
    assert unsafe == {gz[1].name, manifest.name}


def _verify_cli(env: Env) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "cellblock.cli", "audit", "verify", "--json"]
    argv += ["--audit-dir", str(env.log_dir), "--trust-root", str(env.pub)]
    argv += ["--witness", str(env.witness.path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_fifo_or_link_to_fifo_does_not_hang_verify(env: Env) -> None:
    env.fill(12)
    live = env.live()
    fifo = env.root / "fifo"
    os.mkfifo(fifo)
    live.unlink()
    live.symlink_to(fifo)
    r = _verify_cli(env)
    assert r.returncode == 1, r.stderr
    first = json.loads(r.stdout)["problems"][0]
    assert (first["kind"], first["file"], first["offset"]) == ("unsafe_file", live.name, 0)
    live.unlink()
    os.mkfifo(live)  # a FIFO in the directory itself
    r = _verify_cli(env)
    assert r.returncode == 1 and "FIFO" in json.loads(r.stdout)["problems"][0]["message"]
    with pytest.raises(LogCorruptedError, match="FIFO"):
        env.open()
    # show/tail/export read the same files: one sentence, no hang
    r = subprocess.run(
        [sys.executable, "-m", "cellblock.cli", "audit", "show", "--audit-dir", str(env.log_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "FIFO" in r.stderr and "Traceback" not in r.stderr


def test_directory_in_place_of_a_segment(env: Env) -> None:
    env.fill(12)
    live = env.live()
    live.unlink()
    live.mkdir()
    assert "unsafe_file" in kinds(env.verify())


def test_quarantine_link_refused_by_recovery(env: Env) -> None:
    env.fill(12)
    elsewhere = env.root / "outside-quarantine"
    elsewhere.mkdir()
    (env.log_dir / "quarantine").symlink_to(elsewhere)
    with env.live().open("ab") as fh:
        fh.write(b'{"hash":"torn')  # a torn tail: recovery would move it to quarantine/
    with pytest.raises(LogCorruptedError, match="quarantine"):
        env.open(witness=None)
    assert list(elsewhere.iterdir()) == []


def test_witness_fifo_is_an_error_not_a_hang(env: Env) -> None:
    env.fill(3)
    (wfile,) = env.witness.path.glob("*.checkpoint.json")
    wfile.unlink()
    os.mkfifo(wfile)
    with pytest.raises(WitnessError, match="FIFO"):
        env.witness.latest(wfile.name.split(".")[0])
