"""The shared cell mode's isolation promises, proven on real containers (docs/sandbox.md,
"Shared cells"): a program in a batch cannot observe or influence the next one.

Each hostile program runs between two runs of the same probe in ONE shared cell. The probe
prints a snapshot of everything a program could have left for the next: files (/work, /tmp,
/dev/shm, /dev/mqueue), processes, System V and POSIX IPC, abstract unix sockets, free tmpfs
space and memory, environment, working directory, umask and rlimits. Every snapshot must equal
the first, and every program must have run in the same container.
"""

from __future__ import annotations

import itertools
import json

import pytest

from cellblock.batch import BatchRunError
from cellblock.pipeline import Pipeline, PipelineResult

pytestmark = pytest.mark.docker

NOT_ENFORCED = "could not make the kernel refuse System V IPC"


def shared_map(pipeline: Pipeline, codes: list[str], **kwargs: object) -> list[PipelineResult]:
    """Run ``codes`` in one shared cell; where the runner cannot make the kernel refuse IPC
    creation the cell must refuse, clearly, and nothing runs."""
    try:
        return pipeline.map(
            codes,
            concurrency=1,
            cell_mode="shared",
            programs_per_cell=len(codes),
            progress=False,
            **kwargs,  # type: ignore[arg-type]
        )
    except BatchRunError as exc:
        assert all(NOT_ENFORCED in str(o) for o in exc.outcomes), exc.outcomes
        pytest.skip("the runner cannot make this kernel refuse IPC creation: shared cells refused")


PROBE = r"""
import ctypes, json, os, resource, socket
snap = {}
for top in ("/work", "/tmp", "/dev/shm", "/dev/mqueue"):
    try:
        snap[top] = sorted(os.listdir(top))
    except OSError as exc:
        snap[top] = type(exc).__name__
me = os.getpid()
procs = []
for name in os.listdir("/proc"):
    if name.isdigit() and int(name) != me:
        try:
            uid = os.stat(f"/proc/{name}").st_uid
        except OSError:
            continue
        procs.append("root" if uid == 0 else "mine" if uid == os.getuid() else "other")
snap["procs"] = sorted(procs)
ipc = {}
for kind in ("shm", "sem", "msg"):
    try:
        ipc[kind] = open(f"/proc/sysvipc/{kind}").read().splitlines()[1:]
    except OSError:
        ipc[kind] = None
snap["sysvipc"] = ipc
libc = ctypes.CDLL(None, use_errno=True)
snap["shmget_key"] = libc.shmget(0xCB1, 0, 0)  # the hostile program's key: must not exist
try:
    rt = ctypes.CDLL("librt.so.1", use_errno=True)
    snap["mq"] = rt.mq_open(b"/cbleak", os.O_RDONLY, 0, None)
except OSError:
    snap["mq"] = "no librt"
s = socket.socket(socket.AF_UNIX)
try:
    s.connect("\0cellblock-leak")
    snap["abstract"] = "connected"
except OSError as exc:
    snap["abstract"] = type(exc).__name__
try:
    from multiprocessing import shared_memory
    shared_memory.SharedMemory(name="cbleak")
    snap["posix_shm"] = "opened"
except OSError as exc:
    snap["posix_shm"] = type(exc).__name__
try:
    with open("/work/probe.bin", "wb") as f:
        f.write(b"\0" * (40 << 20))  # fails if a previous program's files still hold the tmpfs
    os.unlink("/work/probe.bin")
    snap["tmpfs_40m"] = True
except OSError as exc:
    snap["tmpfs_40m"] = type(exc).__name__
block = bytearray(150 << 20)  # fails (MemoryError or OOM) if memory was left in use
snap["alloc_150m"] = len(block) == 150 << 20
del block
snap["env"] = sorted(k for k in os.environ if k != "CELLBLOCK_UID")
snap["cwd"] = os.getcwd()
old = os.umask(0o22)
snap["umask"] = old
snap["rlimits"] = {n: resource.getrlimit(getattr(resource, n)) for n in (
    "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_STACK",
    "RLIMIT_CORE")}
snap["nice"] = os.nice(0)
print(json.dumps(snap, sort_keys=True))
"""

# A daemon that outlives its parent, ignores SIGTERM and SIGHUP, keeps writing files and keeps
# signalling every process it can (the next program included, if it could reach it).
DAEMON = r"""
import os, signal, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        i = 0
        while True:
            i += 1
            for path in ("/work", "/tmp", "/dev/shm"):
                try:
                    open(f"{path}/daemon-{i}", "w").close()
                except OSError:
                    pass
            try:
                os.kill(-1, signal.SIGTERM)
            except OSError:
                pass
            time.sleep(0.005)
    os._exit(0)
time.sleep(0.2)
print("left a daemon")
"""

FILES = r"""
import os
for top in ("/work", "/tmp", "/dev/shm"):
    open(f"{top}/leak.txt", "w").write("secret")
    os.makedirs(f"{top}/deep/er", exist_ok=True)
    open(f"{top}/deep/er/leak", "w").write("secret")
    os.chmod(f"{top}/deep/er", 0)
    os.chmod(f"{top}/deep", 0)
    os.symlink("/etc/passwd", f"{top}/link")
    os.mkfifo(f"{top}/fifo")
with open("/work/fill.bin", "wb") as f:  # most of the tmpfs
    f.write(b"x" * (50 << 20))
print("left files")
"""

IPC = r"""
import ctypes, os, socket, time
from multiprocessing import shared_memory
libc = ctypes.CDLL(None, use_errno=True)
got = {
    "shm": libc.shmget(0xCB1, 4096, 0o1666),  # IPC_CREAT | 0666
    "sem": libc.semget(0xCB2, 1, 0o1666),
    "msg": libc.msgget(0xCB3, 0o1666),
}
try:
    rt = ctypes.CDLL("librt.so.1", use_errno=True)
    got["mq"] = rt.mq_open(b"/cbleak", os.O_CREAT | os.O_RDWR, 0o666, None)
except OSError:
    got["mq"] = "no librt"
m = shared_memory.SharedMemory(name="cbleak", create=True, size=4096)
m.buf[:6] = b"secret"
if os.fork() == 0:  # keeps an abstract socket listening
    s = socket.socket(socket.AF_UNIX)
    s.bind("\0cellblock-leak")
    s.listen()
    while True:
        time.sleep(1)
time.sleep(0.1)
print(got)
"""

ENVIRONMENT = r"""
import os, resource, sys
os.environ["LEAK"] = "1"
os.putenv("LEAK2", "1")
os.chdir("/tmp")
os.umask(0)
for name in ("RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_STACK", "RLIMIT_AS"):
    lim = getattr(resource, name)
    soft, hard = resource.getrlimit(lim)
    low = 32 if hard == resource.RLIM_INFINITY else max(1, min(hard, 32))
    resource.setrlimit(lim, (low, low))
os.nice(10)
try:
    resource.prlimit(1, resource.RLIMIT_NOFILE, (4, 4))
    print("prlimit on PID 1 worked")
except OSError as exc:
    print("prlimit refused", exc.errno)
try:
    os.kill(1, 9)
    print("signalled PID 1")
except OSError as exc:
    print("kill refused", exc.errno)
"""

MEMORY = r"""
import os
hold = bytearray(100 << 20)
for i in range(0, len(hold), 4096):
    hold[i] = 1
with open("/dev/shm/fill", "wb") as f:  # page cache on the shm tmpfs
    f.write(b"y" * (12 << 20))
if os.fork() == 0:  # and a child holding memory, left behind
    keep = bytearray(50 << 20)
    for i in range(0, len(keep), 4096):
        keep[i] = 1
    os.setsid()
    import time
    time.sleep(60)
print("holding memory")
"""

SPIN = "while True:\n    pass\n"  # runs until its deadline: its kill must not shorten the next

HOSTILE = {"daemon": DAEMON, "files": FILES, "ipc": IPC, "environment": ENVIRONMENT,
           "memory": MEMORY, "spin": SPIN}  # fmt: skip


def test_a_program_cannot_observe_or_influence_the_next(pipeline: Pipeline, runtime: str) -> None:
    names = list(HOSTILE)
    codes = [PROBE]
    for name in names:
        codes += [HOSTILE[name], PROBE]
    results = shared_map(pipeline, codes, limits_override={"runtime": runtime, "timeout_s": 4})
    probes = [r for r in results[0::2]]
    first = probes[0]
    assert first.execution is not None and first.status == "ok", first.execution
    baseline = json.loads(first.execution.stdout)
    assert baseline["tmpfs_40m"] is True and baseline["alloc_150m"] is True
    # only the runner and the handler are other processes; nothing of any other uid
    assert "other" not in baseline["procs"]
    containers = {r.execution.container_id for r in results if r.execution is not None}
    assert len(containers) == 1, "every program must have run in the same shared cell"
    for name, hostile, probe in zip(names, results[1::2], probes[1:], strict=True):
        assert hostile.execution is not None
        assert probe.execution is not None and probe.status == "ok", (name, probe.execution)
        snap = json.loads(probe.execution.stdout)
        assert snap == baseline, f"after the {name!r} program the next one saw: {snap}"
    spin, after_spin = results[-2], results[-1]
    assert spin.execution is not None and spin.execution.timed_out
    assert after_spin.execution is not None and not after_spin.execution.timed_out
    environment = results[1 + 2 * names.index("environment")]
    assert environment.execution is not None
    assert "prlimit refused" in environment.execution.stdout
    assert "kill refused" in environment.execution.stdout
    ipc = results[1 + 2 * names.index("ipc")]
    assert ipc.execution is not None
    # System V objects cannot even be created in a shared cell (seccomp), on both runtimes
    assert "'shm': -1" in ipc.execution.stdout and "'sem': -1" in ipc.execution.stdout
    assert "'msg': -1" in ipc.execution.stdout


def test_each_program_runs_under_its_own_uid(pipeline: Pipeline, runtime: str) -> None:
    code = "import os; print(os.getuid(), os.geteuid(), os.getgid())"
    results = shared_map(pipeline, [code] * 6, limits_override={"runtime": runtime})
    uids = [r.execution.stdout.split()[0] for r in results if r.execution is not None]
    assert len(uids) == 6
    assert all(a != b for a, b in itertools.pairwise(uids))
    assert len({r.execution.container_id for r in results if r.execution is not None}) == 1
