"""The prepared program process (issue 14, the hot path), attacked and checked on both runtimes.

Every single-use cell's runner forks the program's process as soon as it is up and prepares it
(session, signals, pipes, OOM mark, uid drop, streams, a compiler warm-up) before any request
arrives; the request only hands it the code over a private pipe. Nothing of that may show: the
program must find exactly what an unprepared one found, no descriptor but 0, 1 and 2, nothing of
the warm-up in its namespace, its clock starting at the handover, and requests the prepared
process cannot serve (files, packages) must still run in a process forked for them.
"""

from __future__ import annotations

import json

import pytest

from cellblock.sandbox import Limits, Pool, Status
from cellblock.sandbox.files import InputFile
from cellblock.sandbox.interface import Backend, RunRequest

pytestmark = pytest.mark.docker

PROBE = r"""
import json, os, stat, sys
open_fds = []
for fd in range(3, 256):
    try:
        os.fstat(fd)
    except OSError:
        continue
    open_fds.append(fd)
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
print(json.dumps({
    "open_fds": open_fds,
    "stdin_is_devnull": stat.S_ISCHR(os.fstat(0).st_mode),
    "stdin": sys.stdin.read(),
    "argv": sys.argv,
    "name": __name__,
    "file": __file__,
    "cwd": os.getcwd(),
    "uid": os.getuid(),
    "session_leader": os.getsid(0) == os.getpid(),
    "ppid": os.getppid(),
    "cap_eff": status["CapEff"].strip(),
    "cap_bnd": status["CapBnd"].strip(),
    "oom_score_adj": open("/proc/self/oom_score_adj").read().strip(),
    "warm_up_names": sorted(n for n in ("f", "C", "math", "total") if n in globals()),
    "runner_modules": sorted(m for m in sys.modules if m.startswith("cellblock")),
}))
"""


def _facts(backend: Backend, runtime: str, stdin: bytes | None = None, pool: Pool | None = None):  # type: ignore[no-untyped-def]
    request = RunRequest(PROBE, stdin=stdin, limits=Limits(runtime=runtime, timeout_s=30))
    result = pool.run(request) if pool is not None else backend.run(request)
    assert result.status is Status.OK, (result.status, result.error, result.stderr[-2000:])
    return result, json.loads(result.stdout)


def _check_pristine(facts: dict) -> None:  # type: ignore[type-arg]
    assert facts["open_fds"] == [], "the control pipe or another runner descriptor leaked"
    assert facts["argv"] == ["/work/main.py"] and facts["file"] == "/work/main.py"
    assert facts["name"] == "__main__" and facts["cwd"] == "/work"
    assert 10001 <= facts["uid"] < 10001 + 1024
    assert facts["session_leader"] and facts["ppid"] == 1
    assert int(facts["cap_eff"], 16) == 0 and int(facts["cap_bnd"], 16) == 0
    assert facts["oom_score_adj"] == "1000"
    assert facts["warm_up_names"] == [] and facts["runner_modules"] == []


def test_a_prepared_process_looks_like_a_fresh_one(backend: Backend, runtime: str) -> None:
    with Pool(backend, size=1) as pool:
        pool.warm(Limits(runtime=runtime, timeout_s=30), wait=True)
        result, facts = _facts(backend, runtime, pool=pool)
    assert result.pooled
    _check_pristine(facts)
    assert facts["stdin_is_devnull"] and facts["stdin"] == ""


def test_stdin_reaches_a_prepared_process_exactly(backend: Backend, runtime: str) -> None:
    data = b"line one\n" + bytes(range(32, 127)) * 1000  # more than a pipe holds at once
    _, facts = _facts(backend, runtime, stdin=data)
    _check_pristine(facts)
    assert not facts["stdin_is_devnull"]
    assert facts["stdin"] == data.decode()


def test_input_files_run_in_a_process_forked_for_them(backend: Backend, runtime: str) -> None:
    # the prepared process was forked before the files existed: the runner forks afresh
    code = PROBE + "print(open('data.csv').read())\n"
    result = backend.run(
        RunRequest(
            code,
            limits=Limits(runtime=runtime, timeout_s=30),
            files=(InputFile("data.csv", b"a,b\n1,2\n"),),
        )
    )
    assert result.status is Status.OK, (result.error, result.stderr[-2000:])
    facts_line, rest = result.stdout.split("\n", 1)
    _check_pristine(json.loads(facts_line))
    assert rest.startswith("a,b\n1,2")


def test_the_clock_starts_at_the_handover_and_the_deadline_holds(
    backend: Backend, runtime: str
) -> None:
    with Pool(backend, size=1) as pool:
        limits = Limits(runtime=runtime, timeout_s=1.0)
        pool.warm(limits, wait=True)
        # the cell sat in the pool, its process prepared, well before this request
        result = pool.run(RunRequest("import time\ntime.sleep(30)\n", limits=limits))
    assert result.pooled and result.status is Status.TIMEOUT and result.timed_out
    assert 0.9 <= result.duration_s < 5.0


def test_a_program_cannot_reach_the_runner_through_the_prepared_pipes(
    backend: Backend, runtime: str
) -> None:
    # the attacker hunts for any descriptor the preparation may have left, and for the runner's
    # own, and tries to write a forged frame into each
    code = r"""
import os
hits = []
for fd in range(3, 1024):
    try:
        os.write(fd, b'CBR1 {"event":"result","exit_code":0}\n')
        hits.append(fd)
    except OSError:
        pass
for path in ("/proc/1/fd/1", "/proc/1/fd/3", "/proc/1/fd/4"):
    try:
        with open(path, "wb") as f:
            f.write(b'CBR1 {"event":"result","exit_code":0}\n')
            # the runner's own fd 1 is /dev/null on purpose (gVisor lets anyone open that)
            if os.path.samestat(os.fstat(f.fileno()), os.stat("/dev/null")):
                continue
        hits.append(path)
    except OSError:
        pass
print(hits)
raise SystemExit(7)
"""
    result = backend.run(RunRequest(code, limits=Limits(runtime=runtime, timeout_s=30)))
    assert result.stdout.strip() == "[]"
    assert result.exit_code == 7 and result.status is Status.ERROR
