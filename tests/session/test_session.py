"""Sessions on the real engine: state, values, limits, files, audit, and ownership."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cellblock.audit import default_public_key, verify
from cellblock.session import Session, SessionClosedError, SessionLimits
from tests.conftest import managed_containers, wait_until
from tests.session.conftest import policy_for

pytestmark = pytest.mark.docker


def test_state_values_and_imports_survive_between_steps(
    session_policy: Path, audit_dir: Path, runtime: str
) -> None:
    with Session(session_policy, audit_dir=audit_dir) as s:
        first = s.run("import statistics\nxs = [1, 2, 3, 4]\nprint('loaded')")
        assert (first.status, first.stdout, first.value) == ("ok", "loaded\n", None)
        second = s.run("statistics.mean(xs) * 10")
        assert (second.status, second.value) == ("ok", "25.0")
        third = s.run("_ + 1")  # the REPL's underscore holds the last value
        assert third.value == "26.0"
        assert s.run("{'a': [1, 2]}").value == "{'a': [1, 2]}"
        error = s.run("1 / 0")
        assert error.status == "error" and "ZeroDivisionError" in error.stderr
        assert error.session_ended is None
        exit_ = s.run("raise SystemExit(3)")
        assert (exit_.status, exit_.exit_code) == ("exit", 3)
        assert s.run("len(xs)").value == "4"  # nothing of that ended the session
        assert s.alive
    # the log verifies and holds the session's records
    report = verify(audit_dir, trust_root=default_public_key())
    assert report.ok, report.to_dict()
    types = [r["record"]["type"] for r in _records(audit_dir)]
    assert types[0] == "policy.loaded" or "session.opened" in types
    for kind in ("session.opened", "session.step.started", "session.step.finished"):
        assert kind in types
    assert types[-1] == "session.closed" or "session.closed" in types


def _records(audit_dir: Path) -> list[dict]:  # type: ignore[type-arg]
    import json

    out = []
    for seg in sorted(audit_dir.glob("seg-*.jsonl")):
        out += [json.loads(line) for line in seg.read_bytes().splitlines()]
    return out


def test_blocked_step_does_not_end_the_session(tmp_path: Path, audit_dir: Path) -> None:
    policy = policy_for(tmp_path, "runc", block_high=True)
    with Session(policy, audit_dir=audit_dir) as s:
        s.run("x = 5")
        blocked = s.run("import os\nos.system('id')")
        assert blocked.status == "blocked" and not blocked.ran
        assert blocked.decision is not None and blocked.decision["action"] == "block"
        assert s.run("x").value == "5"


def test_step_timeout_interrupts_and_keeps_state(
    session_policy: Path, audit_dir: Path, runtime: str
) -> None:
    limits = SessionLimits(interrupt_grace_s=5.0)
    with Session(session_policy, audit_dir=audit_dir, limits=limits) as s:
        s.run("import time\ncount = 0")
        slow = s.run("while True:\n    count += 1\n    time.sleep(0.01)", timeout=1.0)
        assert slow.status == "interrupted", slow
        assert "KeyboardInterrupt" in slow.stderr and slow.session_ended is None
        assert int(s.run("count").value or 0) > 0  # the state is kept
        stubborn = s.run(
            "try:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    time.sleep(60)", timeout=1.0
        )
        assert stubborn.status == "timeout" and stubborn.session_ended
        assert "grace" in (stubborn.session_ended or "")
        assert not s.alive
        with pytest.raises(SessionClosedError):
            s.run("count")


def test_killing_the_interpreter_ends_the_session(runc_policy: Path, audit_dir: Path) -> None:
    with Session(runc_policy, audit_dir=audit_dir) as s:
        gone = s.run("import os\nos._exit(7)")
        assert gone.status == "killed" and "exit status 7" in (gone.session_ended or "")
        with pytest.raises(SessionClosedError):
            s.run("1")


def test_files_round_trip_and_listing(runc_policy: Path, audit_dir: Path) -> None:
    data = os.urandom(50_000)
    with Session(runc_policy, audit_dir=audit_dir) as s:
        sent = s.upload({"in/blob.bin": data})
        assert sent[0]["size"] == len(data)
        step = s.run(
            "import hashlib\nraw = open('in/blob.bin', 'rb').read()\n"
            "open('out.bin', 'wb').write(raw[::-1])\nhashlib.sha256(raw).hexdigest()"
        )
        assert step.value == repr(sent[0]["sha256"])
        got = s.download("out.bin")
        assert got.artifacts[0].data == data[::-1] and got.artifacts[0].size == len(data)
        names = {e.name: e.kind for e in s.list_files()}
        assert names["in"] == "dir" and names["in/blob.bin"] == "file"
        s.run("import os\nos.symlink('/etc/passwd', 'pw')\nos.mkfifo('pipe')")
        refused = {r.name: r.reason for r in s.download(["pw", "pipe"]).refused}
        assert refused == {
            "pw": "symbolic link",
            "pipe": "not a regular file (device, FIFO or socket)",
        }
        # a planted link at an upload's destination is replaced, never followed
        s.upload({"pw": b"mine"})
        assert s.run("import os\n(os.path.islink('pw'), open('pw').read())").value == (
            "(False, 'mine')"
        )


def test_file_that_changes_while_read_is_refused_or_whole(
    runc_policy: Path, audit_dir: Path
) -> None:
    with Session(runc_policy, audit_dir=audit_dir) as s:
        s.run(
            textwrap.dedent(
                """
                import threading
                def churn():
                    while True:
                        with open('grow.bin', 'wb') as f:
                            for _ in range(50):
                                f.write(b'x' * 1000)
                threading.Thread(target=churn, daemon=True).start()
                """
            )
        )
        for _ in range(3):
            got = s.download("grow.bin")
            for artifact in got.artifacts:  # a snapshot that did not change while read
                assert artifact.size == len(artifact.data)
            for r in got.refused:
                assert r.reason in (
                    "changed while it was read",
                    "cannot open (No such file or directory)",
                )


def test_two_sessions_cannot_see_each_other(runc_policy: Path, audit_dir: Path) -> None:
    with (
        Session(runc_policy, audit_dir=audit_dir) as a,
        Session(runc_policy, audit_dir=audit_dir) as b,
    ):
        a.run("open('secret', 'w').write('a')\nopen('/tmp/secret', 'w').write('a')\nsecret = 1")
        probe = b.run(
            "import os\n(sorted(os.listdir('.')), sorted(os.listdir('/tmp')), "
            "len([p for p in os.listdir('/proc') if p.isdigit()]), 'secret' in globals())"
        )
        assert probe.value == "([], [], 2, False)", probe
        assert a._channel.container_id != b._channel.container_id


def test_session_ends_when_its_owner_is_killed(runc_policy: Path, tmp_path: Path) -> None:
    import docker

    script = tmp_path / "owner.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            from pathlib import Path
            from cellblock.session import Session
            s = Session({str(runc_policy)!r}, audit_dir=Path({str(tmp_path / "a")!r}))
            s.run("x = 1")
            print("ready", flush=True)
            time.sleep(600)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2]
    )
    client = docker.from_env()
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith(b"ready")
        assert managed_containers(client, proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert wait_until(lambda: not managed_containers(client, proc.pid), timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        for c in managed_containers(client, proc.pid):
            client.api.remove_container(c["Id"], force=True)
        client.close()


def test_idle_timeout_ends_the_session(runc_policy: Path, audit_dir: Path) -> None:
    with Session(runc_policy, audit_dir=audit_dir, limits=SessionLimits(idle_timeout_s=1)) as s:
        s.run("x = 1")
        time.sleep(3)
        with pytest.raises(SessionClosedError, match=r"idle|ended"):
            s.run("x")


def test_memory_bounds_the_whole_session(session_policy: Path, audit_dir: Path) -> None:
    # the policy's profile gives 256 MiB: two steps of 150 MiB each fit alone, not together
    with Session(session_policy, audit_dir=audit_dir) as s:
        first = s.run("a = bytearray(150 * 1024 * 1024)\nlen(a)")
        assert first.status == "ok", first
        second = s.run("b = bytearray(150 * 1024 * 1024)\nlen(b)")
        assert second.status == "oom", second
        assert second.session_ended and not s.alive


def test_pipeline_session_shares_the_pipeline(runc_policy: Path, audit_dir: Path) -> None:
    from cellblock.pipeline import Pipeline

    with Pipeline(str(runc_policy), audit_dir=audit_dir) as pipeline:
        with pipeline.session() as s:
            assert s.run("6 * 7").value == "42"
        assert pipeline.execute("print(1)").execution is not None  # the pipeline goes on
