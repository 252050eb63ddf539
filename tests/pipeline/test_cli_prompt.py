"""`cellblock run` asks a person on a terminal when the policy requires review."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pipeline.test_pipeline import policy_file

pytestmark = pytest.mark.docker


def run_on_terminal(args: list[str], answer: bytes, timeout: float = 120) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin/stdout/stderr; answer its first question."""
    leader, follower = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "cellblock.cli", *args],
                            stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    out = b""
    answered = False
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the follower side closed: the process ended
                    break
                if not chunk:
                    break
                out += chunk
                if not answered and b"[y/N]" in out:
                    os.write(leader, answer)
                    answered = True
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, end - time.monotonic()))
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    return code, out.decode(errors="replace")


@pytest.mark.parametrize(("answer", "expected"), [(b"y\n", 0), (b"n\n", 127)])
def test_review_prompts_on_a_terminal(tmp_path: Path, answer: bytes, expected: int) -> None:
    from cellblock.audit import generate_keypair

    key, pub = tmp_path / "k.key", tmp_path / "k.pub"
    generate_keypair(key, pub)
    policy = policy_file(tmp_path, "strict", tmp_path / "audit", key)
    program = tmp_path / "env.py"
    program.write_text("import os\nprint('HOME is', os.environ['HOME'])\nprint(os.environ)\n")
    code, out = run_on_terminal(["run", str(program), "--policy", str(policy)], answer)
    assert "needs approval" in out and "[y/N]" in out
    assert code == expected, out
    assert ("HOME is /work" in out) is (expected == 0)
