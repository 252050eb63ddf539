"""cellblock's in-container runner. PID 1 of every sandbox; standard library only.

It runs inside the sandbox image, so it must not import cellblock. Protocol (version 1):

* host -> runner, on the container's stdin: one JSON header line
  ``{"v": 1, "code_len": N, "stdin_len": M, "timeout_s": T, "stdout_cap": A, "stderr_cap": B,
  "filename": "main.py"}`` followed by N bytes of UTF-8 source and M bytes for the program's stdin.
  An optional ``"wheels": [{"filename", "sha256", "len"}]`` adds per-run packages after stdin
  (checked and unpacked read-only on sys.path, see ``_install_wheels``).
* runner -> host, on the container's stdout: lines ``CBR1 <json>\n``. First ``{"event": "ready"}``
  as soon as the interpreter is up (the warm pool waits for it), then, while the program runs,
  ``{"event": "output", "stream": "stdout"|"stderr", "data": <base64>}`` for every chunk kept
  under the caps (so the host keeps what was printed even if the runner itself dies), then exactly
  one ``{"event": "result", ...}`` with the byte counts. After the result the runner waits for the
  host to hang up, so its exit can never race the result out of the stream.

Why the program cannot forge or disturb the result:

* the program runs in a forked child whose fds 0/1/2 are pipes owned by the runner; every other
  descriptor, the result channel included, is closed in the child;
* the runner runs as root of the container with four capabilities and drops the program to its
  own sandbox uid (``CELLBLOCK_UID``) with none: the program cannot signal, prlimit, renice or
  ptrace the runner, nor open ``/proc/1/fd/*`` or ``/proc/1/mem`` (the runner is non-dumpable too);
* the runner is PID 1 of its PID namespace and installs no catchable handler, so signals sent
  from inside the sandbox do not reach it; only the host can kill it;
* output beyond the caps is read and counted but dropped, so a flood cannot block or exhaust it.

When the program's main process exits, every process left in the sandbox is killed, so a
double-forked daemon cannot outlive the run. At the deadline everything is killed.
"""

import atexit
import base64
import contextlib
import io
import json
import os
import resource
import select
import signal
import sys
import threading
import time
import traceback
import types
from typing import Any, NoReturn

CHANNEL_PREFIX = b"CBR1 "
WORKDIR = "/work"
SANDBOX_UID_FIRST = 10001
SANDBOX_UID_COUNT = 1024
PROTOCOL = 2
# Under gVisor the runner enforces the program's memory budget itself (see docs/sandbox.md):
# it samples gVisor's own accounting this often while the program runs.
MEMORY_SAMPLE_S = 0.01
HANGUP_WAIT_S = 5.0
_INPUTS: list[tuple[str, bytes]] = []  # files for the program's working directory
_IGNORED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
    signal.SIGTSTP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGPIPE,
)


def _make_undumpable() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except Exception as exc:  # keep running, but say so: the host reports it in doctor
        os.write(2, f"cellblock-runner: prctl failed: {exc!r}\n".encode())


def _readable(fd: int, timeout: float | None) -> bool:
    """Wait until ``fd`` is readable (or at EOF); ``None`` waits without end."""
    # poll, not select: under gVisor with its OCI seccomp filter select(2) fails with EPERM
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        try:
            return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000) + 1)))
        except InterruptedError:
            continue


def _send(chan: int, message: dict[str, Any]) -> None:
    data = CHANNEL_PREFIX + json.dumps(message, separators=(",", ":")).encode() + b"\n"
    view = memoryview(data)
    while view:
        try:
            n = os.write(chan, view)
        except BlockingIOError:  # never lose a frame to a descriptor someone made non-blocking
            poller = select.poll()
            poller.register(chan, select.POLLOUT)
            poller.poll(1000)
            continue
        view = view[n:]


class _Request:
    """Buffered reads of the request from stdin: one read per chunk, never per byte."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()

    def _fill(self, deadline: float | None) -> bool:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        if not _readable(self.fd, remaining):
            return False
        try:
            chunk = os.read(self.fd, 1 << 20)
        except BlockingIOError:  # a spurious wake-up is not the end of the request
            return True
        if not chunk:
            return False
        self.buf += chunk
        return True

    def header(self, deadline: float | None) -> dict[str, Any] | None:
        while b"\n" not in self.buf:
            if len(self.buf) > 65536 or not self._fill(deadline):
                return None
        nl = self.buf.index(b"\n")
        line = bytes(self.buf[:nl])
        del self.buf[: nl + 1]
        header: dict[str, Any] = json.loads(line)
        return header

    def exact(self, n: int, deadline: float | None) -> bytes | None:
        while len(self.buf) < n:
            if not self._fill(deadline):
                return None
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data


class _Cgroup:
    """Reads the sandbox's own cgroup (v1 or v2) from inside, before the container goes."""

    def __init__(self) -> None:
        self.version = None
        if os.path.exists("/sys/fs/cgroup/memory/memory.max_usage_in_bytes"):
            self.version = 1
        elif os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            self.version = 2

    @staticmethod
    def _read(path: str) -> str | None:
        try:
            with open(path, "rb") as f:
                return f.read().decode()
        except OSError:
            return None

    def _keyed(self, path: str, key: str) -> int | None:
        text = self._read(path)
        if text is None:
            return None
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == key:
                return int(parts[1])
        return None

    def cpu_ns(self) -> int | None:
        if self.version == 1:
            text = self._read("/sys/fs/cgroup/cpuacct/cpuacct.usage") or self._read(
                "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage"
            )
            return int(text) if text and text.strip().isdigit() else None
        if self.version == 2:
            usec = self._keyed("/sys/fs/cgroup/cpu.stat", "usage_usec")
            return None if usec is None else usec * 1000
        return None

    def peak_memory(self) -> int | None:
        path = None
        if self.version == 1:
            path = "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"
        elif self.version == 2:
            path = "/sys/fs/cgroup/memory.peak"
        text = self._read(path) if path else None
        return int(text) if text and text.strip().isdigit() else None

    def oom_kills(self) -> int | None:
        if self.version == 1:
            return self._keyed("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill")
        if self.version == 2:
            return self._keyed("/sys/fs/cgroup/memory.events", "oom_kill")
        return None


def _child(filename: str, code: bytes, fds: tuple[int, int, int]) -> NoReturn:
    """In the forked child: become the program. Never returns."""
    try:
        _prepare_child(fds)
    except BaseException as exc:  # the sandbox is broken; say so and report exit status 125
        _cannot_start(exc)
    _become_program(filename, code)


def _cannot_start(exc: BaseException) -> NoReturn:
    with contextlib.suppress(BaseException):
        os.write(2, f"cellblock-runner: cannot start the program: {exc!r}\n".encode())
    os._exit(125)


def _prepare_child(fds: tuple[int, int, int], keep: int | None = None) -> None:
    """Everything the program's process needs that does not depend on the program: its own
    session, default signals, the pipes on 0/1/2, no other descriptor (but ``keep``, moved to
    fd 3), the OOM mark, the sandbox uid with no capabilities, the working directory and fresh
    standard streams. Raises when any of it fails."""
    stdin_r, out_w, err_w = fds
    os.setsid()
    for sig in _IGNORED:
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # what CPython does at startup
    os.dup2(stdin_r, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    if keep is not None:
        os.dup2(keep, 3)
    os.closerange(3 if keep is None else 4, 65536)
    _mark_first_oom_victim()
    if os.getuid() == 0:
        _drop_to_sandbox_user()
    os.chdir(WORKDIR)
    sys.stdin = io.TextIOWrapper(
        io.FileIO(0, "r", closefd=False), encoding="utf-8", errors="surrogateescape"
    )
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )
    setattr(sys, "__stdin__", sys.stdin)  # noqa: B010 - typeshed marks these final
    setattr(sys, "__stdout__", sys.stdout)  # noqa: B010
    setattr(sys, "__stderr__", sys.stderr)  # noqa: B010
    for module in (
        "cellblock_runner",
        "cellblock_runner_files",
        "cellblock_runner_session",
        "cellblock_runner_batch",
    ):
        sys.modules.pop(module, None)


def _become_program(filename: str, code: bytes) -> NoReturn:
    """In the prepared child: write and run the program, then exit as the interpreter would."""
    try:
        if _INPUTS:  # files the host sent, written as the sandbox user before the program starts
            import cellblock_runner_files  # type: ignore[import-not-found]

            for name, data in _INPUTS:
                cellblock_runner_files.write_file(WORKDIR, name, data)
            sys.modules.pop("cellblock_runner_files", None)
        path = os.path.join(WORKDIR, filename)
        with open(path, "wb") as f:
            f.write(code)
        source = code.decode("utf-8", "surrogateescape")
        sys.argv = [path]
        sys.path[0] = WORKDIR
        main_module = types.ModuleType("__main__")
        main_module.__file__ = path
        setattr(main_module, "__builtins__", __builtins__)  # noqa: B010
        sys.modules["__main__"] = main_module  # pickle and multiprocessing look here
    except BaseException as exc:
        _cannot_start(exc)
    status = 0
    try:
        compiled = compile(source, path, "exec")
        exec(compiled, main_module.__dict__)
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except BaseException as exc:
        status = 1
        _print_exception(exc)
    with contextlib.suppress(BaseException):
        # wait for non-daemon threads, as interpreter exit does
        threading._shutdown()  # type: ignore[attr-defined]
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(status)


class _Prepared:
    """A program process forked and prepared (``_prepare_child``) while the cell waits in the pool,
    so a request only has to hand it the code: the fork, the uid drop and the rest leave the
    caller's path. It blocks on a private pipe (fd 3, closed before the code runs) and holds
    nothing of any request: it was forked before one arrived."""

    def __init__(self) -> None:
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        in_r, self.in_w = os.pipe()
        ctrl_r, self.ctrl_w = os.pipe()
        sys.stdout.flush()
        self.pid = os.fork()
        if self.pid == 0:
            _prepared_child((in_r, out_w, err_w), ctrl_r)
        for fd in (out_w, err_w, in_r, ctrl_r):
            os.close(fd)

    def hand_over(self, filename: str, code: bytes, has_stdin: bool) -> None:
        """Give the program to the prepared process. A process that died meanwhile (it could not
        prepare) has said why on its stderr and exits 125, which the run reports."""
        message = json.dumps({"filename": filename, "code_len": len(code), "stdin": has_stdin})
        data = memoryview(message.encode() + b"\n" + code)
        try:
            while data:
                data = data[os.write(self.ctrl_w, data) :]
        except OSError:
            pass
        os.close(self.ctrl_w)
        if not has_stdin:
            os.close(self.in_w)
            self.in_w = -1

    def discard(self) -> None:
        """For a request the prepared process cannot serve (packages, files, a session)."""
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        for fd in (self.out_r, self.err_r, self.in_w, self.ctrl_w):
            with contextlib.suppress(OSError):
                os.close(fd)


_WARM_SOURCE = """
import math
def f(xs: list[int], *, k: int = 2) -> dict[str, float]:
    total = sum(x * k for x in xs if x % 2 == 0)
    return {f"v{i}": math.sqrt(total) / (i + 1) for i in range(3)}
class C:
    def __init__(self) -> None:
        self.items = [1, 2.5, "s", b"b", None, (1,), {1}]
try:
    assert f([1, 2, 3]) and C().items, "msg"
except (ValueError, KeyError) as exc:
    raise RuntimeError(str(exc)) from exc
finally:
    pass
print(1)
"""


def _prepared_child(fds: tuple[int, int, int], ctrl_r: int) -> NoReturn:
    try:
        _prepare_child(fds, keep=ctrl_r)
        with contextlib.suppress(BaseException):
            # the compiler's pages are copied on first write after the fork (under gVisor each
            # such fault is costly): pay that here, while the cell waits in the pool
            compile(_WARM_SOURCE, "<warm-up>", "exec")
        request = _Request(3)
        header = request.header(None)
        code = None if header is None else request.exact(int(header["code_len"]), None)
        if header is None or code is None:
            os._exit(0)  # discarded, or the runner went away: nothing to run
        os.close(3)
        if not header["stdin"]:  # as in an unprepared child: stdin is /dev/null
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
        filename = str(header["filename"])
    except BaseException as exc:
        _cannot_start(exc)
    _become_program(filename, code)


def _mark_first_oom_victim() -> None:
    """oom_score_adj 1000 for the program, written while the child is still root: after the drop
    its /proc/self files belong to root (it inherits the runner's non-dumpable flag), so the write
    would fail. Any failure raises: the program must not start as an equal OOM candidate to the
    runner. (Raising needs no capability. The floor stays the runner's 0, so a program that makes
    itself dumpable again can lower its own value back to 0; making 1000 a floor needs
    CAP_SYS_RESOURCE, which this engine cannot grant. The host's OOM watch keeps the result
    honest when the OOM killer then takes the runner.)"""
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")
    with open("/proc/self/oom_score_adj") as f:
        if f.read().strip() != "1000":
            raise OSError("oom_score_adj did not take the value 1000")


def _drop_to_sandbox_user() -> None:
    """Privilege separation: the runner is root of the container with only SETUID, SETGID,
    SETPCAP and KILL; the program becomes the sandbox user with no capabilities and an empty
    bounding set, so it can neither signal, renice, prlimit nor open the /proc entries of the
    runner, on runc and on gVisor alike (gVisor does not shield a same-uid PID 1 at all)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP; EINVAL past the last cap is fine
    uid = int(os.environ.get("CELLBLOCK_UID", SANDBOX_UID_FIRST))
    if not SANDBOX_UID_FIRST <= uid < SANDBOX_UID_FIRST + SANDBOX_UID_COUNT:
        os._exit(125)  # never run the program as anything but a sandbox user
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        os._exit(125)


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(BaseException):
        sys.stderr.write(str(code) + "\n")
    return 1


def _print_exception(exc: BaseException) -> None:
    try:
        tb = exc.__traceback__
        # drop the runner's own frame so the traceback starts in the user's file
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb)
    except BaseException:
        os.write(2, b"cellblock: the program raised an exception\n")


def _kill_everything_else() -> bool:
    """SIGKILL every other process of the sandbox; False when none was left."""
    try:
        os.kill(-1, signal.SIGKILL)  # from PID 1: every other process of the sandbox
    except ProcessLookupError:
        return False
    except OSError:
        pass
    return True


def _reap() -> None:
    """Collect every exited child without blocking (orphans are re-parented to PID 1)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class _MemoryBudget:
    """The program's memory budget, enforced by the runner where the container's own limit cannot
    be the program's (gVisor: its kernel lives in the same cgroup, so the cgroup gets headroom).
    Measures what gVisor accounts to the sandbox's applications: MemTotal - MemFree."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.peak = 0
        self.exceeded = False
        self._next = 0.0

    def check(self, now: float) -> bool:
        """True once usage is above the budget (sampled at most every MEMORY_SAMPLE_S)."""
        if self.budget <= 0 or self.exceeded or now < self._next:
            return self.exceeded
        self._next = now + MEMORY_SAMPLE_S
        used = _meminfo_used()
        if used is not None:
            self.peak = max(self.peak, used)
            self.exceeded = used > self.budget
        return self.exceeded


def _meminfo_used() -> int | None:
    try:
        with open("/proc/meminfo", "rb") as f:
            text = f.read(512).decode()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines()[:2]:
        key, _, value = line.partition(":")
        fields[key] = int(value.split()[0]) * 1024
    if "MemTotal" not in fields or "MemFree" not in fields:
        return None
    return fields["MemTotal"] - fields["MemFree"]


def run_program(
    chan: int,
    header: dict[str, Any],
    code: bytes,
    stdin_data: bytes,
    cgroup: _Cgroup,
    prepared: _Prepared | None = None,
) -> None:
    timeout = float(header["timeout_s"])
    caps = (int(header["stdout_cap"]), int(header["stderr_cap"]))
    filename = header.get("filename", "main.py")
    memory = _MemoryBudget(int(header.get("memory_budget", 0)))

    oom_before = cgroup.oom_kills() or 0
    cpu_before = cgroup.cpu_ns()
    ru_before = _children_cpu()

    in_w: int | None
    if prepared is not None:
        pid, out_r, err_r = prepared.pid, prepared.out_r, prepared.err_r
        started = time.monotonic()
        prepared.hand_over(filename, code, bool(stdin_data))
        in_w = prepared.in_w if stdin_data else None
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if stdin_data:
            in_r, in_w = os.pipe()
        else:
            in_r, in_w = os.open("/dev/null", os.O_RDONLY), None
        sys.stdout.flush()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(filename, code, (in_r, out_w, err_w))
        os.close(out_w)
        os.close(err_w)
        os.close(in_r)
    deadline = started + timeout

    kept = {out_r: 0, err_r: 0}
    counts = {out_r: 0, err_r: 0}
    capmap = {out_r: caps[0], err_r: caps[1]}
    names = {out_r: "stdout", err_r: "stderr"}
    open_fds = [out_r, err_r]
    pending = memoryview(stdin_data) if stdin_data else None
    if in_w is not None:
        os.set_blocking(in_w, False)
    main_status = None
    timed_out = False
    main_exit_at = None
    watch_host = [0] if header.get("watch_host", True) else []
    quiet_since: float | None = None
    try:
        exit_fd = [os.pidfd_open(pid)]  # readable when the program exits: no polling delay
    except (AttributeError, OSError):
        exit_fd = []

    while True:
        now = time.monotonic()
        if main_status is None and memory.check(now):
            # over its budget: the program is killed as the OOM killer would, and told so
            _kill_everything_else()
            _, main_status = os.waitpid(pid, 0)
            main_exit_at = time.monotonic()
            for fd in exit_fd:
                os.close(fd)
            exit_fd = []
            deadline = min(deadline, main_exit_at + 1.0)
        if main_status is None:
            waited, status = os.waitpid(pid, os.WNOHANG)
            if waited == pid:
                main_status = status
                main_exit_at = now
                _kill_everything_else()  # daemons and leftovers end with the program
                for fd in exit_fd:
                    os.close(fd)
                exit_fd = []
        if main_status is not None:
            # again on every pass: a process that was mid-fork at the first kill is caught now
            anyone_left = _kill_everything_else()
            _reap()
            if not open_fds:
                break
            if anyone_left:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since > 0.1:
                # nobody is left to write, yet a pipe has no EOF: a descriptor is parked
                # somewhere (an SCM_RIGHTS cycle in gVisor); do not wait for the deadline
                break
        if now >= deadline and main_status is None:
            timed_out = True
            _kill_everything_else()
            _, main_status = os.waitpid(pid, 0)
            main_exit_at = time.monotonic()
            for fd in exit_fd:
                os.close(fd)
            exit_fd = []
            deadline = main_exit_at + 1.0  # drain what is already in the pipes, briefly
            continue
        if main_status is not None and now >= deadline:
            break  # pipes held by something unkillable; do not wait forever
        poll = 0.05 if exit_fd or main_status is not None else 0.002
        if memory.budget and main_status is None:
            poll = min(poll, MEMORY_SAMPLE_S)
        wait_for = max(0.0, min(deadline - now, poll))
        poller = select.poll()
        for fd in open_fds + watch_host + exit_fd:
            poller.register(fd, select.POLLIN)
        if in_w is not None and pending is not None:
            poller.register(in_w, select.POLLOUT)
        try:
            events = poller.poll(int(wait_for * 1000) + (1 if wait_for > 0 else 0))
        except InterruptedError:
            continue
        for fd, _ in events:
            if fd in exit_fd:
                continue  # the waitpid above collects it on the next pass
            if fd == 0 and watch_host:
                try:
                    hung_up = not os.read(0, 4096)
                except BlockingIOError:  # a spurious wake-up is not a hang-up
                    hung_up = False
                if hung_up:  # the host hung up: nobody will read a result
                    _kill_everything_else()
                    os._exit(3)
                continue
            if fd == in_w:
                continue
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                open_fds.remove(fd)
                os.close(fd)
                continue
            counts[fd] += len(chunk)
            quiet_since = None
            room = capmap[fd] - kept[fd]
            if room > 0:
                part = chunk[:room]
                kept[fd] += len(part)
                # at once, not at the end: what the program printed survives a dying runner
                _send(
                    chan,
                    {
                        "event": "output",
                        "stream": names[fd],
                        "data": base64.b64encode(part).decode(),
                    },
                )
        if in_w is not None and pending is not None and any(fd == in_w for fd, _ in events):
            try:
                n = os.write(in_w, pending[:65536])
                pending = pending[n:]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:  # the program closed its stdin
                pending = None
            if pending is not None and not len(pending):
                pending = None
            if pending is None and in_w is not None:
                os.close(in_w)
                in_w = None

    ended = main_exit_at or time.monotonic()
    if in_w is not None:
        os.close(in_w)
    _kill_everything_else()
    _reap()

    exit_code = sig = None
    if os.WIFEXITED(main_status):
        exit_code = os.WEXITSTATUS(main_status)
    elif os.WIFSIGNALED(main_status):
        sig = os.WTERMSIG(main_status)
        exit_code = 128 + sig

    oom_after = cgroup.oom_kills()
    cpu_after = cgroup.cpu_ns()
    if cpu_before is not None and cpu_after is not None:
        cpu_time = (cpu_after - cpu_before) / 1e9
        accounting = f"cgroup-v{cgroup.version}"
    else:
        cpu_time = _children_cpu() - ru_before
        accounting = "rusage"
    peak = cgroup.peak_memory()
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        accounting = "rusage"
        if memory.budget:
            peak = max(peak, memory.peak)
            accounting = "gvisor-meminfo"

    if header.get("collect"):  # artifacts, read by a collector that is the sandbox user
        import cellblock_runner_files as files

        caps = (int(header.get("collect_max_files", 100)), int(header.get("collect_max_bytes", 0)))
        patterns = list(header["collect"])
        found = files.collect_in_child(WORKDIR, patterns, *caps, _drop_to_sandbox_user)
        for frame in files.frames_for(*found):
            _send(chan, frame)
    _send(
        chan,
        {
            "event": "result",
            "exit_code": exit_code,
            "signal": None if timed_out else sig,
            "timed_out": timed_out,
            "oom_killed": memory.exceeded or bool(oom_after is not None and oom_after > oom_before),
            "duration_s": round(ended - started, 6),
            "cpu_time_s": round(cpu_time, 6),
            "peak_memory_bytes": peak,
            "stdout_bytes": counts[out_r],
            "stderr_bytes": counts[err_r],
            "accounting": accounting,
        },
    )


PACKAGES_DIR = "/tmp/.cellblock-packages"
_MAX_WHEEL_FILES = 20_000


PRELOAD_MIN_MEMORY = 192 * 1024 * 1024


def _memory_limit() -> "int | None":
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
            return None if text == "max" else int(text)
        except (OSError, ValueError):
            continue
    return None


def _preload() -> None:
    """Import the image profile's heavy modules (``CELLBLOCK_PRELOAD``) before the program's
    fork, so the program finds them in ``sys.modules``. A failure only loses the speed-up; under
    a small memory limit it is skipped, since the modules count against the container's memory."""
    names = [n.strip() for n in os.environ.get("CELLBLOCK_PRELOAD", "").split(",") if n.strip()]
    limit = _memory_limit() if names else None
    if limit is not None and limit < PRELOAD_MIN_MEMORY:
        return
    for name in names:
        with contextlib.suppress(BaseException):
            __import__(name)


def _install_wheels(request: "_Request", header: dict[str, Any]) -> "str | None":
    """Per-run packages: read the wheels that follow stdin, check each sha256, unpack them into
    a root-owned directory on the /tmp tmpfs (readable, not writable, by the program) and put it
    on sys.path, where the forked program inherits it. Returns an error message, or None."""
    wheels = header.get("wheels") or []
    if not wheels:
        return None
    import hashlib  # only now: a run without packages keeps the runner as small as before
    import zipfile

    os.makedirs(PACKAGES_DIR, mode=0o755, exist_ok=False)
    for spec in wheels:
        data = request.exact(int(spec["len"]), time.monotonic() + 30)
        if data is None:
            return "request truncated"
        if hashlib.sha256(data).hexdigest() != spec["sha256"]:
            return f"wheel {spec['filename']} does not match its sha256"
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            if len(names) > _MAX_WHEEL_FILES:
                return f"wheel {spec['filename']} has too many files"
            for name in names:
                parts = name.split("/")
                if name.endswith("/") or not name:
                    continue
                if name.startswith("/") or "\0" in name or any(p in ("", ".", "..") for p in parts):
                    return f"wheel {spec['filename']} holds an unsafe path {name!r}"
                if ".data" in parts[0] and parts[0].endswith(".data"):
                    if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                        continue  # scripts, headers, data: not importable, not installed
                    parts = parts[2:]
                target = os.path.join(PACKAGES_DIR, *parts)
                os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                with os.fdopen(fd, "wb") as out:
                    out.write(zf.read(name))
    sys.path.insert(1, PACKAGES_DIR)  # the child replaces sys.path[0] with the workdir
    return None


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main() -> int:
    for sig in _IGNORED:
        signal.signal(sig, signal.SIG_IGN)
    _make_undumpable()
    # The result channel lives on a private descriptor; fd 1 points at /dev/null so that
    # nothing printed by accident can be mistaken for a frame.
    chan = os.dup(1)
    devnull = os.open("/dev/null", os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    idle = float(os.environ.get("CELLBLOCK_IDLE_S", "0") or 0)
    _preload()
    with contextlib.suppress(BaseException):
        # CPython sets the compiler up lazily on its first compile; done here, before any fork,
        # no program's process pays for it (measured: 2.9 -> 0.3 ms for a child's first compile)
        compile(_WARM_SOURCE, "<warm-up>", "exec")
    cgroup = _Cgroup()
    _send(
        chan,
        {
            "event": "ready",
            "v": PROTOCOL,
            "pid": os.getpid(),
            "python": ".".join(map(str, sys.version_info[:3])),
            "cgroup": cgroup.version,
        },
    )
    if os.environ.get("CELLBLOCK_SHARED") == "1":  # an opt-in shared cell: _runner_batch.py
        import cellblock_runner_batch  # type: ignore[import-not-found]

        return int(cellblock_runner_batch.serve(sys.modules[__name__], chan, cgroup, idle))
    # after "ready", so a cold run's request travels while the process prepares
    prepared: _Prepared | None = _Prepared()
    deadline = time.monotonic() + idle if idle > 0 else None
    request = _Request(0)
    header = request.header(deadline)
    if header is None:
        return 0  # idle timeout or the host went away: leave quietly
    if header.get("v") != PROTOCOL:
        _send(chan, {"event": "error", "message": "protocol version mismatch"})
        return 2
    code = request.exact(int(header["code_len"]), time.monotonic() + 30)
    stdin_len = int(header.get("stdin_len", 0))
    stdin_data = request.exact(stdin_len, time.monotonic() + 30) if stdin_len else b""
    if code is None or stdin_data is None:
        _send(chan, {"event": "error", "message": "request truncated"})
        return 2
    needs_fresh = header.get("wheels") or header.get("files") or header.get("mode") == "session"
    if prepared is not None and needs_fresh:
        prepared.discard()  # it cannot see the packages or files; a session forks its own
        prepared = None
    problem = _install_wheels(request, header)
    if problem:
        _send(chan, {"event": "error", "message": problem})
        return 2
    for entry in header.get("files") or ():  # input files follow the wheels
        data = request.exact(int(entry["len"]), time.monotonic() + 30)
        if data is None:
            _send(chan, {"event": "error", "message": "request truncated"})
            return 2
        _INPUTS.append((str(entry["name"]), data))
    if header.get("mode") == "session":  # a persistent interpreter; see cellblock_runner_session
        import cellblock_runner_session  # type: ignore[import-not-found]

        return int(cellblock_runner_session.serve(chan, header, request, cgroup))
    run_program(chan, header, code, stdin_data, cgroup, prepared)
    if header.get("await_hangup"):
        _await_hangup(request.fd, time.monotonic() + HANGUP_WAIT_S)
    return 0


def _await_hangup(fd: int, deadline: float) -> None:
    """Stay until the host, which has the result, hangs up: the runner's exit tears the sandbox
    down, and under gVisor that teardown can overtake the last frame on its way to the host."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not _readable(fd, remaining):
            return
        try:
            if not os.read(fd, 4096):
                return
        except OSError:
            return


if __name__ == "__main__":
    sys.exit(main())
