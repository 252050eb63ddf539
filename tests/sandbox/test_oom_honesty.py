"""The result stays true when memory runs out, even when the OOM killer takes the runner itself.

Regression tests for issue 9, points 1 and 3: the program's ``oom_score_adj`` is 1000 (it was 0:
the write came after the privilege drop and its error was swallowed); a program that parks memory
outside its processes and steers the OOM killer onto the runner is reported as ``oom`` by the
host (it was ``killed`` with ``oom_killed`` false); what it printed before is kept (it was lost:
output travelled only in the final frame).
"""

from __future__ import annotations

import pytest

from cellblock.sandbox import Limits, Status
from cellblock.sandbox.interface import Backend, ExecutionResult, RunRequest

pytestmark = pytest.mark.docker
MIB = 1024 * 1024


def run(backend: Backend, code: str, limits: Limits) -> ExecutionResult:
    return backend.run(RunRequest(code, limits=limits))


def test_program_starts_with_oom_score_adj_1000(backend: Backend, runtime: str) -> None:
    code = """
import subprocess
print(open("/proc/self/oom_score_adj").read().strip())
print(subprocess.run(["cat", "/proc/self/oom_score_adj"], capture_output=True, text=True).stdout.strip())
"""
    result = run(backend, code, Limits(runtime=runtime, timeout_s=20))
    assert result.status is Status.OK, result
    # the program and what it starts are the OOM killer's first choice; the runner is not
    assert result.stdout.split() == ["1000", "1000"]


# Parks memory in SysV segments that belong to no process, lowers its own score to the runner's
# (it may: it makes itself dumpable again), then lets a tiny process take the rest, so that the
# runner is the largest candidate left for the OOM killer.
PARK_AND_STEER = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]
print("printed before the OOM", flush=True)
libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
try:
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("0")
except OSError:
    pass

def used():
    try:
        return int(open("/sys/fs/cgroup/memory/memory.usage_in_bytes").read())
    except OSError:  # gVisor: its own accounting
        info = dict(line.split(":") for line in open("/proc/meminfo").read().splitlines())
        return (int(info["MemTotal"].split()[0]) - int(info["MemFree"].split()[0])) * 1024

while used() < LIMIT - (24 << 20):
    shmid = libc.shmget(0, 1 << 20, 0o600 | 0o1000)
    if shmid < 0:
        break
    addr = libc.shmat(shmid, None, 0)
    ctypes.memset(addr, 1, 1 << 20)
    libc.shmdt(ctypes.c_void_p(addr))
print("parked", flush=True)
os.execv("/bin/sh", ["sh", "-c", "head -c 60m /dev/zero > /work/fill; echo not reached"])
"""


def test_oom_that_takes_the_runner_is_reported_as_oom_with_output(
    backend: Backend, runtime: str
) -> None:
    limit = 128 * MIB
    code = PARK_AND_STEER.replace("LIMIT", str(limit))
    result = run(backend, code, Limits(runtime=runtime, memory_bytes=limit, timeout_s=30))
    assert result.status is Status.OOM, result
    assert result.oom_killed
    assert result.stdout.startswith("printed before the OOM\nparked\n"), result
    assert "not reached" not in result.stdout


@pytest.mark.parametrize(
    "park",
    [
        "fd = os.memfd_create('x')\nwhile True: os.write(fd, b'm' * (1 << 20))",
        # pipe buffers: many pipes, each filled and never read
        "import fcntl\nkeep = []\nwhile True:\n"
        "    r, w = os.pipe()\n"
        "    try: fcntl.fcntl(w, 1031, 1 << 20)\n"
        "    except OSError: pass\n"
        "    os.set_blocking(w, False)\n"
        "    try:\n"
        "        while True: os.write(w, b'p' * 65536)\n"
        "    except BlockingIOError: pass\n"
        "    keep.append((r, w))",
    ],
    ids=["memfd", "pipes"],
)
def test_memory_parked_outside_the_heap_ends_as_oom_with_output(
    backend: Backend, runtime: str, park: str
) -> None:
    code = "import os\nprint('printed first', flush=True)\n" + park
    result = run(backend, code, Limits(runtime=runtime, memory_bytes=96 * MIB, timeout_s=30))
    if result.status is Status.ERROR:
        # the kernel may refuse the allocation itself (ENOMEM, EMFILE) before the limit bites
        assert "Error" in result.stderr, result
    else:
        assert result.status is Status.OOM, result
        assert result.oom_killed
    assert result.stdout == "printed first\n", result


def test_output_streamed_before_the_runner_dies_is_kept_and_exact_under_the_cap(
    backend: Backend, runtime: str
) -> None:
    # 3000 bytes printed against a 1000-byte cap, then the runner is taken: the host keeps
    # exactly the first 1000 bytes, as the runner would have reported them
    limit = 128 * MIB
    prefix = "import sys\nsys.stdout.write('a' * 3000)\nsys.stdout.flush()\n"
    code = prefix + PARK_AND_STEER.replace("LIMIT", str(limit)).replace(
        'print("printed before the OOM", flush=True)', ""
    ).replace('print("parked", flush=True)', "")
    result = run(
        backend,
        code,
        Limits(runtime=runtime, memory_bytes=limit, timeout_s=30, stdout_bytes=1000),
    )
    assert result.status is Status.OOM, result
    assert result.stdout == "a" * 1000
    assert result.stdout_truncated
    assert result.stdout_bytes >= 1000
