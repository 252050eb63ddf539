"""The runner's shared-cell mode (opt-in batches): several programs of one caller in one cell.

Standard library only; it runs inside the sandbox image next to the runner (as
``cellblock_runner_batch``) and must not import cellblock. The runner hands over to
:func:`serve` when the host created the cell with ``CELLBLOCK_SHARED=1``.

PID 1 never touches a program's data: for each program it forks a fresh *handler* (from its own
pristine memory, ahead of the request so the fork leaves the program's path), which reads the
request, forks the program exactly as in a single-use cell and
streams its frames; so no program's code, input or output is left in memory that a later
program's fork would inherit. Between programs PID 1

1. the handler, once the result is out, kills every other process (until none is left), then
   becomes the finished program's uid and empties ``/work``, ``/tmp``, ``/dev/shm`` and
   ``/dev/mqueue`` and removes its System V IPC objects (none can exist: the handler's own seccomp
   filter refuses their creation, as the shared cell's profile does), then checks from scratch
   that every one of them is empty; its exit status says whether all of that succeeded,
2. PID 1 kills and reaps anything left once more (nothing, normally),
3. reports ``{"event": "cleaned", "ok": ...}``; the host sends the next program only after an ok,
   and retires the cell on anything else.

Every program runs under its own uid of the image's range (the host picks it; the runner refuses
the previous program's uid), so a process the kill could not reach could still not touch the next
program's files or processes.
"""

import contextlib
import os
import select
import signal
import stat
import sys
import time
from typing import Any

HANGUP = 10  # the handler found no request: the host hung up
BAD_REQUEST = 11
LEFTOVER = 12  # a process of the program could not be killed
CLEAN_DIRS = ("/work", "/tmp", "/dev/shm", "/dev/mqueue")  # noqa: S108 - the sandbox's own
SYSVIPC = ("/proc/sysvipc/shm", "/proc/sysvipc/sem", "/proc/sysvipc/msg")
KILL_WAIT_S = 5.0


class _FreshAccounting:
    """The cell's cgroup, minus its peak memory: that is the cell's peak so far, not this
    program's. The handler is fresh per program, so its children's rusage is this program's."""

    def __init__(self, cgroup: Any) -> None:
        self._cgroup = cgroup
        self.version = cgroup.version

    def cpu_ns(self) -> Any:
        return self._cgroup.cpu_ns()

    def oom_kills(self) -> Any:
        return self._cgroup.oom_kills()

    def peak_memory(self) -> None:
        return None


def serve(runner: Any, chan: int, cgroup: Any, idle_s: float) -> int:
    """PID 1's loop in a shared cell: one handler per program, a full clean-up after each."""
    why = _unfit()
    runner._send(chan, {"event": "shared", "ok": not why, "why": why})
    if why:
        return 4
    previous_uid = None
    while True:
        # the next handler is forked now, before its request: the fork leaves the program's path
        deadline = time.monotonic() + idle_s if idle_s > 0 else None
        uid_r, uid_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(uid_r)
            os._exit(_handle(runner, chan, cgroup, uid_w, previous_uid, deadline))
        os.close(uid_w)
        status = _wait_for(pid)
        uid = _read_uid(uid_r, runner)
        os.close(uid_r)
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        if code == HANGUP and uid is None:
            return 0
        if uid is None or code != 0:
            why = f"the handler's run or clean-up failed (status {code})"
            runner._send(chan, {"event": "cleaned", "ok": False, "why": why})
            return 4
        ok, why = _clean_up(runner, uid)
        runner._send(chan, {"event": "cleaned", "ok": ok, "why": why})
        if not ok:
            return 4
        previous_uid = uid


def _unfit() -> str:
    """Why this cell cannot be shared, or "" when it can."""
    pid = os.fork()
    if pid == 0:  # a tester: the handlers' own filter must refuse IPC creation here
        os._exit(_filter_test())
    _, status = os.waitpid(pid, 0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        return (
            "the runner could not make the kernel refuse System V IPC and POSIX message queues "
            f"in this cell (test status {status}), so programs cannot share it"
        )
    if not _shared_workdir():
        return "the shared cell's /work could not be made a sticky directory owned by root"
    return ""


# The runner's own seccomp filter for every program of a shared cell (installed in the handler,
# inherited by the program): creating System V IPC objects or POSIX message queues is refused,
# whatever the engine's profile does (gVisor registered without --oci-seccomp ignores that one,
# and gVisor has no way to list message queues, so none may exist). Numbers per architecture.
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_REFUSED_NR = {
    "x86_64": (29, 64, 68, 240),  # shmget, semget, msgget, mq_open
    "aarch64": (194, 190, 186, 180),
}
_X32_BIT = 0x40000000


def _install_filter() -> None:
    """Install the filter in this process (and so its future children); raises on failure."""
    import ctypes
    import platform

    machine = platform.machine()
    if machine not in _AUDIT_ARCH:
        raise OSError(f"no shared-cell filter for {machine}")
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, refuse = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    numbers = _REFUSED_NR[machine]
    # [0] arch  [1] other arch -> refuse  [2] nr  [3] x32 -> refuse  [4..] each -> refuse
    insns: list[tuple[int, int, int, int]] = [(ld, 0, 0, 4)]
    # a jump goes to pc + 1 + offset: from [1] to RET refuse at [5 + n] is 3 + n
    insns.append((jeq, 0, 3 + len(numbers), _AUDIT_ARCH[machine]))
    insns.append((ld, 0, 0, 0))
    insns.append((jge, len(numbers) + 1, 0, _X32_BIT))
    for i, nr in enumerate(numbers):
        insns.append((jeq, len(numbers) - i, 0, nr))
    insns.append((ret, 0, 0, allow))
    insns.append((ret, 0, 0, refuse))

    class SockFilter(ctypes.Structure):
        _fields_ = [
            ("code", ctypes.c_ushort),
            ("jt", ctypes.c_ubyte),
            ("jf", ctypes.c_ubyte),
            ("k", ctypes.c_uint),
        ]

    class SockFprog(ctypes.Structure):
        _fields_ = [
            ("len", ctypes.c_ushort),
            ("filter", ctypes.POINTER(SockFilter)),
        ]

    array = (SockFilter * len(insns))(*[SockFilter(c, t, f, k) for c, t, f, k in insns])
    prog = SockFprog(len(insns), array)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP failed")


def _filter_test() -> int:
    """In a throw-away child: install the filter, then try every refused call."""
    try:
        import ctypes

        _install_filter()
        libc = ctypes.CDLL(None, use_errno=True)
        made = [
            libc.shmget(0, 4096, 0o1600),
            libc.semget(0, 1, 0o1600),
            libc.msgget(0, 0o1600),
        ]
        try:
            rt = ctypes.CDLL("librt.so.1", use_errno=True)
            made.append(rt.mq_open(b"/cellblock-shared-probe", os.O_CREAT | os.O_RDWR, 0o600, None))
        except OSError:
            pass
        return 0 if all(m < 0 for m in made) else 1
    except BaseException:
        return 2


def _shared_workdir() -> bool:
    """/work as a sticky, world-writable directory owned by root (the engine mounts the tmpfs
    with the image directory's mode, whatever mode the host asked for): every program, each
    under its own uid, can create files there, and none can remove another's."""
    try:
        os.chmod(runner_workdir(), 0o1777)  # noqa: S103 - sticky, as /tmp; the runner owns it
        st = os.stat(runner_workdir())
    except OSError:
        return False
    return st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o1777


def runner_workdir() -> str:
    return CLEAN_DIRS[0]


def _wait_readable(fd: int, deadline: float | None) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        try:
            if poller.poll(None if remaining is None else int(remaining * 1000) + 1):
                return True
        except InterruptedError:
            continue


def _wait_for(pid: int) -> int:
    """Wait for the handler, reaping every orphan re-parented to PID 1 meanwhile."""
    while True:
        try:
            waited, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 1 << 8
        if waited == pid:
            return status


def _read_uid(fd: int, runner: Any) -> int | None:
    try:
        text = os.read(fd, 32).decode()
        uid = int(text)
    except (OSError, ValueError):
        return None
    first, count = runner.SANDBOX_UID_FIRST, runner.SANDBOX_UID_COUNT
    return uid if first <= uid < first + count else None


def _handle(
    runner: Any,
    chan: int,
    cgroup: Any,
    uid_w: int,
    previous_uid: int | None,
    deadline: float | None,
) -> int:
    """In the handler: wait for one request (until the idle deadline), run it as a single-use
    cell would, report."""
    try:
        with contextlib.suppress(BaseException):  # the compiler's pages, copied before the run
            compile(runner._WARM_SOURCE, "<warm-up>", "exec")
        request = runner._Request(0)
        if not _wait_readable(0, deadline):
            return HANGUP  # idle: leave quietly (the host hangs up or discards the cell)
        header = request.header(time.monotonic() + 30)
        if header is None:
            return HANGUP
        uid = header.get("uid")
        first, count = runner.SANDBOX_UID_FIRST, runner.SANDBOX_UID_COUNT
        if (
            header.get("v") != runner.PROTOCOL
            or not isinstance(uid, int)
            or not first <= uid < first + count
            or uid == previous_uid
        ):
            runner._send(chan, {"event": "error", "message": "bad shared-cell request"})
            return BAD_REQUEST
        os.write(uid_w, str(uid).encode())
        os.close(uid_w)
        code = request.exact(int(header["code_len"]), time.monotonic() + 30)
        stdin_len = int(header.get("stdin_len", 0))
        stdin_data = request.exact(stdin_len, time.monotonic() + 30) if stdin_len else b""
        if code is None or stdin_data is None:
            runner._send(chan, {"event": "error", "message": "request truncated"})
            return BAD_REQUEST
        os.environ["CELLBLOCK_UID"] = str(uid)  # the program's uid (checked again in the child)
        _install_filter()  # the program inherits it; a failure ends the handler: no run
        runner.run_program(chan, header, code, stdin_data, _FreshAccounting(cgroup))
        # the result is out; nothing of the program may run on, then the handler (which PID 1
        # never reuses) becomes the program's uid and wipes what it left: one fork fewer
        if not _sweep(time.monotonic() + KILL_WAIT_S):
            return LEFTOVER
        return _wipe(runner, uid)
    except BaseException as exc:
        try:
            os.write(2, f"cellblock-runner: shared-cell handler failed: {exc!r}\n".encode())
        finally:
            return BAD_REQUEST  # noqa: B012


def _clean_up(runner: Any, uid: int) -> tuple[bool, str]:
    """After a handler that ran and wiped (status 0): check from PID 1 that nothing is left."""
    if not _kill_all(time.monotonic() + KILL_WAIT_S):
        return False, "a process of the previous program could not be killed"
    return True, ""


def _sweep(deadline: float) -> bool:
    """In the handler (not PID 1): SIGKILL every process but PID 1 and itself, until none is
    left; the orphans' zombies are PID 1's to reap, which it does while it waits for us."""
    while time.monotonic() < deadline:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            return True
        except OSError:
            pass
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        time.sleep(0.0005)
    return False


def _kill_all(deadline: float) -> bool:
    """SIGKILL everything but PID 1 and reap it, until nothing is left."""
    while time.monotonic() < deadline:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except OSError:
            pass
        while True:
            try:
                waited, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True  # no child (and, in PID 1, no orphan) is left
            if waited == 0:
                break
        time.sleep(0.0005)
    return False


def _wipe(runner: Any, uid: int) -> int:
    """In the handler, after the program: as its uid, remove everything it left."""
    try:
        _become(uid)
        for top in CLEAN_DIRS:
            if os.path.isdir(top):
                for entry in os.listdir(top):
                    _remove(os.path.join(top, entry))
        ipc_clean = _remove_sysv_ipc()
        left = [top for top in CLEAN_DIRS if os.path.isdir(top) and os.listdir(top)]
        return 1 if left or not ipc_clean else 0
    except BaseException:
        return 2


def _become(uid: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError("could not become the program's uid")


def _remove(path: str) -> None:
    """Remove a file or a whole tree the uid owns, whatever modes the program set on it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        os.chmod(path, 0o700)
        for entry in os.listdir(path):
            _remove(os.path.join(path, entry))
        os.rmdir(path)
    else:
        os.unlink(path)


def _ipc_entries(path: str) -> list[list[str]]:
    try:
        with open(path) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return []  # gVisor has no /proc/sysvipc: there the *_INFO counts and a scan serve
    return [line.split() for line in lines if line.strip()]


# shmctl/semctl/msgctl commands (linux/ipc.h, shm.h, sem.h, msg.h)
_IPC_RMID, _SHM_INFO, _SHM_STAT, _SEM_INFO, _SEM_STAT, _MSG_INFO, _MSG_STAT = (
    0,
    14,
    13,
    19,
    18,
    12,
    11,
)
IPC_SCAN = 256  # ids tried under gVisor; more objects than that: the check fails, the cell retires


def _ipc_in_use(libc: Any) -> int:
    """How many System V IPC objects exist in the sandbox's IPC namespace (both runtimes)."""
    import ctypes

    buf = ctypes.create_string_buffer(4096)
    ints = ctypes.cast(buf, ctypes.POINTER(ctypes.c_int))
    total = 0
    if libc.shmctl(0, _SHM_INFO, buf) >= 0:
        total += ints[0]  # struct shm_info.used_ids
    if libc.semctl(0, 0, _SEM_INFO, buf) >= 0:
        total += ints[7]  # struct seminfo.semusz: sets in use
    if libc.msgctl(0, _MSG_INFO, buf) >= 0:
        total += ints[0]  # struct msginfo.msgpool: queues in use
    return total


def _remove_sysv_ipc() -> bool:
    """Remove every System V IPC object (as their owner); True when none is left."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if _ipc_in_use(libc) == 0:
        return True
    buf = ctypes.create_string_buffer(4096)
    shm = {int(f[1]) for f in _ipc_entries(SYSVIPC[0])}
    sem = {int(f[1]) for f in _ipc_entries(SYSVIPC[1])}
    msg = {int(f[1]) for f in _ipc_entries(SYSVIPC[2])}
    if not os.path.exists("/proc/sysvipc"):  # gVisor: ids by index, and the indexes themselves
        for index in range(IPC_SCAN):
            shm.update(i for i in (libc.shmctl(index, _SHM_STAT, buf), index) if i >= 0)
            sem.update(i for i in (libc.semctl(index, 0, _SEM_STAT, buf), index) if i >= 0)
            msg.update(i for i in (libc.msgctl(index, _MSG_STAT, buf), index) if i >= 0)
    for ident in shm:
        libc.shmctl(ident, _IPC_RMID, None)
    for ident in sem:
        libc.semctl(ident, 0, _IPC_RMID)
    for ident in msg:
        libc.msgctl(ident, _IPC_RMID, None)
    return _ipc_in_use(libc) == 0


if __name__ == "__main__":  # pragma: no cover - imported by the runner, never run alone
    sys.exit(2)
