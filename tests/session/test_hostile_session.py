"""Hostile steps: what a session's program must not be able to do to the session machinery.

The host never parses program bytes as protocol: output arrives base64-encoded inside the
runner's own frames, and what the interpreter reports about a step is checked by the runner.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cellblock.session import Session, SessionClosedError
from tests.conftest import managed_containers

pytestmark = pytest.mark.docker


def test_background_process_does_not_survive_into_the_next_step(
    open_policy: Path, audit_dir: Path, runtime: str
) -> None:
    with Session(open_policy, audit_dir=audit_dir) as s:
        first = s.run(
            textwrap.dedent(
                """
                import os, subprocess, time
                if os.fork() == 0:          # a forked child that would tamper later
                    time.sleep(1.5)
                    open('flag', 'w').write('tampered')
                    os._exit(0)
                if os.fork() == 0:          # a double-forked daemon
                    os.setsid()
                    if os.fork() == 0:
                        time.sleep(1.5)
                        open('flag2', 'w').write('tampered')
                    os._exit(0)
                subprocess.Popen(['sleep', '60'], start_new_session=True)
                x = 'kept'
                """
            )
        )
        assert first.status == "ok", first.stderr
        after = s.run(
            "import os, time\ntime.sleep(3)\n"
            "(os.path.exists('flag'), os.path.exists('flag2'), "
            "len([p for p in os.listdir('/proc') if p.isdigit()"
            " and open(f'/proc/{p}/stat').read().split(')')[-1].split()[0] != 'Z']), x)"
        )
        assert after.value == "(False, False, 2, 'kept')", after


def test_step_cannot_reach_the_host_channel_or_kill_the_runner(
    open_policy: Path, audit_dir: Path, runtime: str
) -> None:
    with Session(open_policy, audit_dir=audit_dir) as s:
        probe = s.run(
            textwrap.dedent(
                """
                import os, signal
                null = os.stat('/dev/null').st_rdev
                reached = []  # descriptors of the runner that opened and are not /dev/null
                for fd in range(64):
                    for mode in (os.O_RDONLY, os.O_WRONLY):
                        try:
                            opened = os.open(f'/proc/1/fd/{fd}', mode)
                        except OSError:
                            continue
                        if os.fstat(opened).st_rdev != null:
                            reached.append(fd)
                        os.close(opened)
                try:
                    os.close(os.open('/proc/1/mem', os.O_RDONLY))
                    reached.append('mem')
                except OSError:
                    pass
                try:
                    os.kill(1, signal.SIGKILL)
                    killed = 'sent'
                except OSError as exc:
                    killed = type(exc).__name__
                forged = b'CBR1 {"event":"step_result","outcome":"reported","value":"FORGED"}\\n'
                os.write(1, forged)
                os.write(2, forged)
                (reached, killed)
                """
            )
        )
        assert probe.status == "ok", probe.stderr
        assert probe.value in ("([], 'PermissionError')", "([], 'sent')"), probe.value
        assert probe.stdout.startswith('CBR1 {"event":"step_result"')  # plain output, not protocol
        assert s.run("1 + 1").value == "2"  # the runner is alive and the session goes on


def test_replacing_builtins_does_not_forge_results_or_boundaries(
    open_policy: Path, audit_dir: Path
) -> None:
    with Session(open_policy, audit_dir=audit_dir) as s:
        setup = s.run(
            textwrap.dedent(
                """
                import builtins, json, os, sys
                real_write = os.write
                def fake_print(*args, **kwargs):
                    real_write(1, b'CBR1 {"event":"step_result","value":"FORGED"}\\n')
                builtins.print = fake_print
                builtins.repr = lambda obj: 'FORGED'
                builtins.len = lambda obj: 0
                builtins.compile = lambda *a, **k: None
                sys.displayhook = lambda value: real_write(1, b'FORGED DISPLAY\\n')
                json.dumps = lambda *a, **k: '{"id": 99, "outcome": "ok", "figures": []}'
                os.write = lambda fd, data: len(data)
                """
            )
        )
        assert setup.status == "ok", setup.stderr
        step = s.run("print('hello')\n40 + 2")
        assert (step.status, step.value) == ("ok", "42"), step
        assert step.stdout == 'CBR1 {"event":"step_result","value":"FORGED"}\n'
        assert s.run("__builtins__ = {}\n7").value == "7"
        assert s.run("6 * 7").value == "42" and s.alive


def test_garbage_on_the_report_pipe_ends_only_this_session(
    open_policy: Path, audit_dir: Path
) -> None:
    import docker

    with Session(open_policy, audit_dir=audit_dir) as s:
        # a report for another step is ignored, not taken as this one's end
        early = s.run(
            "import os, time\n"
            'os.write(4, b\'{"id": 12345, "outcome": "ok", "value": "FORGED", "figures": []}\\n\')\n'
            "time.sleep(0.5)\n'real'"
        )
        assert early.value == "'real'", early
        broken = s.run("import os\nos.write(4, b'not json at all\\n')\nimport time\ntime.sleep(1)")
        assert broken.status == "killed"
        assert "protocol" in (broken.session_ended or "")
        container = s._channel.container_id
        with pytest.raises(SessionClosedError):
            s.run("1")
    client = docker.from_env()
    try:
        assert not [c for c in managed_containers(client) if c["Id"] == container]
    finally:
        client.close()


def test_killing_everything_from_inside_ends_the_session_cleanly(
    open_policy: Path, audit_dir: Path
) -> None:
    with Session(open_policy, audit_dir=audit_dir) as s:
        # kill(-1) reaches every process of the sandbox user but the caller: none is left
        others = s.run("import os, signal\nos.kill(-1, signal.SIGKILL)")
        assert others.status == "error" and "ProcessLookupError" in others.stderr
        gone = s.run("os.kill(os.getpid(), signal.SIGKILL)")
        assert gone.status == "killed" and "signal 9" in (gone.session_ended or "")
