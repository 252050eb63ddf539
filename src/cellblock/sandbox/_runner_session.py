"""cellblock's in-container session server: a persistent interpreter. Standard library only.

Copied into the image as ``cellblock_runner_session.py``; the runner (PID 1, root with four
capabilities) calls :func:`serve` when the request header says ``"mode": "session"``.

Processes:

* the runner keeps the host channel and parses only the host's requests;
* the *worker* is a forked child that became the sandbox user (as a one-shot program does) and
  keeps one ``__main__`` namespace across steps. It is the program's process: everything it
  reports (the last value's repr, figures) is program-controlled, so the runner reads it from a
  private pipe with hard caps, checks its shape, and re-encodes it into its own frames; the
  program's stdout/stderr are separate pipes relayed as base64 ``output`` frames. Nothing the
  program writes is ever parsed by the host;
* file operations (put, get, list) run in a fresh fork of the runner that becomes the sandbox
  user, never in the worker.

Host -> runner, after the session header: one JSON line per request, followed by its payload:
``{"op": "step", "id": N, "code_len": L, "timeout_s": T, "grace_s": G, "stdout_cap": A,
"stderr_cap": B, "value_cap": V}``, ``{"op": "put", "name": ..., "len": L}``,
``{"op": "get", "patterns": [...], "max_files": F, "max_bytes": B}``, ``{"op": "list"}``,
``{"op": "close"}``. Runner -> host: ``session_ready``, then per request ``output`` frames and
one ``step_result`` / ``put_done`` / ``file``... ``files_done`` / ``listing`` frame; ``ended``
when the session ends by itself (idle, lifetime, the interpreter died).

A step that overruns its timeout gets SIGINT (``KeyboardInterrupt`` in the program); if the
worker reports back within the grace period the step is ``interrupted`` and the state is kept,
otherwise everything is killed and the session ends. After every step each process other than
the worker is killed, so nothing forked by a step lives into the next one.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import io
import json
import os
import select
import signal
import sys
import time
import types
from typing import Any

# The machinery's own builtins, bound as this module's globals before any step runs: a step that
# replaces them in the builtins module changes what the program sees, not what the worker uses.
_MACHINERY_BUILTINS = (
    "len", "int", "isinstance", "repr", "compile", "exec", "eval", "list", "str", "bytes",
    "memoryview", "dict", "range", "sum", "enumerate", "getattr", "setattr", "open", "print",
)  # fmt: skip
globals().update({name: getattr(builtins, name) for name in _MACHINERY_BUILTINS})

WORKDIR = "/work"
CTL_MAX = 256 * 1024  # the worker's report, without figures
FIGURES_MAX = 20
FIGURES_MAX_BYTES = 16 * 1024 * 1024


def _runner() -> Any:
    return sys.modules["cellblock_runner"]


# -- the worker (the program's process) -------------------------------------------------------


def _worker(req_fd: int, ctl_fd: int, out_w: int, err_w: int) -> None:
    """Become the sandbox user and serve steps until the pipe closes. Never returns."""
    runner = _runner()
    try:
        os.setsid()
        for sig in runner._IGNORED:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # default_int_handler while a step runs
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.dup2(req_fd, 3)
        os.dup2(ctl_fd, 4)
        os.closerange(5, 65536)
        runner._mark_first_oom_victim()
        if os.getuid() == 0:
            runner._drop_to_sandbox_user()
        os.chdir(WORKDIR)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(
            io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
            line_buffering=True,
        )  # fmt: skip
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
            line_buffering=True,
        )  # fmt: skip
        setattr(sys, "__stdin__", sys.stdin)  # noqa: B010
        setattr(sys, "__stdout__", sys.stdout)  # noqa: B010
        setattr(sys, "__stderr__", sys.stderr)  # noqa: B010
        os.environ["MPLBACKEND"] = "Agg"  # figures are saved, never shown
        main = types.ModuleType("__main__")
        main.__file__ = os.path.join(WORKDIR, "<session>")
        setattr(main, "__builtins__", __builtins__)  # noqa: B010
        sys.modules["__main__"] = main
        sys.argv = [""]
        sys.path[0] = WORKDIR
        for name in ("cellblock_runner", "cellblock_runner_files", "cellblock_runner_session"):
            sys.modules.pop(name, None)
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            os.write(2, f"cellblock-runner: cannot start the session: {exc!r}\n".encode())
        os._exit(125)
    _serve_steps(main.__dict__)


def _serve_steps(namespace: dict[str, Any]) -> None:
    # the machinery's own references, taken before any step runs: a step that replaces
    # builtins, print or sys.displayhook changes the program's view, not these
    read, write, dumps, exit_ = os.read, os.write, json.dumps, os._exit
    while True:
        head = b""
        while len(head) < 8:
            chunk = read(3, 8 - len(head))
            if not chunk:
                exit_(0)
            head += chunk
        step_id, size = int.from_bytes(head[:4], "big"), int.from_bytes(head[4:], "big")
        code = b""
        while len(code) < size:
            chunk = read(3, size - len(code))
            if not chunk:
                exit_(0)
            code += chunk
        report, figures = _run_step(namespace, step_id, code)
        report["figures"] = [len(f) for f in figures]
        data = dumps(report).encode() + b"\n" + b"".join(figures)
        view = memoryview(data)
        while view:
            view = view[write(4, view) :]


class _Machinery:
    """What the worker uses, bound once before any step runs: a step that replaces a module's
    attribute (ast.parse, signal.signal, os.waitpid, contextlib.suppress...) changes what the
    program sees, not what the machinery calls."""

    import ast as _ast

    compile = builtins.compile
    exec = builtins.exec
    eval = builtins.eval
    repr = builtins.repr
    only_ast = _ast.PyCF_ONLY_AST
    Expr = _ast.Expr
    Expression = _ast.Expression
    set_signal = signal.signal
    SIGINT = signal.SIGINT
    SIG_IGN = signal.SIG_IGN
    default_int_handler = signal.default_int_handler
    waitpid = os.waitpid
    WNOHANG = os.WNOHANG
    del _ast


def _run_step(
    namespace: dict[str, Any], step_id: int, code: bytes
) -> tuple[dict[str, Any], list[bytes]]:
    m = _Machinery
    report: dict[str, Any] = {"id": step_id, "value": None, "outcome": "ok", "exit_code": None}
    try:  # children of the last step, killed by the runner, are collected here
        while m.waitpid(-1, m.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
    filename = f"<step {step_id}>"
    try:
        m.set_signal(m.SIGINT, m.default_int_handler)  # a step timeout interrupts
        source = code.decode("utf-8", "surrogateescape")
        tree = m.compile(source, filename, "exec", m.only_ast)
        last = None
        if tree.body and isinstance(tree.body[-1], m.Expr):
            last = m.Expression(tree.body.pop().value)
        m.exec(m.compile(tree, filename, "exec"), namespace)
        if last is not None:
            value = m.eval(m.compile(last, filename, "eval"), namespace)
            if value is not None:
                namespace["_"] = value
                report["value"] = m.repr(value)[:1_000_000]
    except SystemExit as exc:
        report["outcome"] = "exit"
        report["exit_code"] = _runner_exit_status(exc.code)
    except KeyboardInterrupt:
        report["outcome"] = "interrupted"
        _print_tb()
    except BaseException:
        report["outcome"] = "error"
        _print_tb()
    try:
        m.set_signal(m.SIGINT, m.SIG_IGN)  # the machinery's own work is not interrupted
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    figures: list[bytes] = []
    try:
        figures = _save_figures()
    except BaseException as exc:
        report["figure_error"] = m.repr(exc)[:500]
    return report, figures


def _runner_exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:  # not contextlib.suppress: a step may have replaced it
        sys.stderr.write(str(code) + "\n")
    except BaseException:
        pass
    return 1


def _print_tb() -> None:
    import traceback

    try:
        exc = sys.exc_info()[1]
        assert exc is not None
        tb = exc.__traceback__
        while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<step"):
            tb = tb.tb_next  # start at the user's code, not the machinery's frames
        traceback.print_exception(type(exc), exc, tb)
    except BaseException:
        os.write(2, b"cellblock: the step raised an exception\n")


def _save_figures() -> list[bytes]:
    """Every open matplotlib figure as PNG, then closed (only if the step used pyplot)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    out = []
    for number in list(plt.get_fignums())[:FIGURES_MAX]:
        figure = plt.figure(number)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        plt.close(figure)
        out.append(buffer.getvalue())
    plt.close("all")
    return out


# -- the server (PID 1) -------------------------------------------------------------------------


class _Session:
    def __init__(self, chan: int, header: dict[str, Any], request: Any, cgroup: Any) -> None:
        self.runner = _runner()
        self.chan = chan
        self.request = request
        self.cgroup = cgroup
        self.started = time.monotonic()
        self.idle_s = float(header.get("idle_s", 300))
        self.lifetime_end = self.started + float(header.get("lifetime_s", 3600))
        self.memory_budget = int(header.get("memory_budget", 0))
        self.worker = 0
        self.worker_status: int | None = None
        self.ended: str | None = None

    def send(self, frame: dict[str, Any]) -> None:
        self.runner._send(self.chan, frame)

    def start_worker(self) -> None:
        req_r, self.req_w = os.pipe()
        self.ctl_r, ctl_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(self.req_w)
            os.close(self.ctl_r)
            os.close(self.out_r)
            os.close(self.err_r)
            os.close(self.chan)
            _worker(req_r, ctl_w, out_w, err_w)
            os._exit(0)
        for fd in (req_r, ctl_w, out_w, err_w):
            os.close(fd)
        for fd in (self.ctl_r, self.out_r, self.err_r):
            os.set_blocking(fd, False)
        self.worker = pid

    # -- lifetime ---------------------------------------------------------------------------

    def kill_others(self) -> None:
        """SIGKILL every process but the runner and the worker, until none is left."""
        for _ in range(50):
            found = False
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                pid = int(entry)
                if pid in (1, os.getpid(), self.worker):
                    continue
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                    found = True
            self._reap()
            if not found:
                return

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.worker:
                self.worker_status = status
                self.worker = 0

    def worker_gone(self) -> bool:
        if not self.worker:
            return True
        pid, status = os.waitpid(self.worker, os.WNOHANG)
        if pid == self.worker:
            self.worker_status = status
            self.worker = 0
            return True
        return False

    def end(self, reason: str) -> None:
        self.ended = reason
        self.runner._kill_everything_else()
        self.runner._reap()
        self.worker = 0

    # -- requests ---------------------------------------------------------------------------

    def serve(self) -> int:
        self.start_worker()
        self.send({"event": "session_ready", "worker": self.worker})
        while True:
            deadline = min(time.monotonic() + self.idle_s, self.lifetime_end)
            header = self.request.header(deadline)
            if header is None:
                now = time.monotonic()
                reason = "lifetime" if now >= self.lifetime_end else "idle"
                if now < deadline:
                    reason = "host"  # the request stream ended: the host went away
                self.end(reason)
                with contextlib.suppress(OSError):
                    self.send({"event": "ended", "reason": reason})
                return 0
            op = header.get("op")
            if op == "close":
                self.end("closed")
                self.send({"event": "ended", "reason": "closed"})
                self.runner._await_hangup(self.request.fd, time.monotonic() + 5.0)
                return 0
            if op == "step":
                code = self.request.exact(int(header["code_len"]), time.monotonic() + 30)
                if code is None:
                    return 2
                self.step(header, code)
                if self.ended:
                    self.send({"event": "ended", "reason": self.ended})
                    self.runner._await_hangup(self.request.fd, time.monotonic() + 5.0)
                    return 0
            elif op == "put":
                data = self.request.exact(int(header["len"]), time.monotonic() + 60)
                if data is None:
                    return 2
                self.put(str(header["name"]), data)
            elif op == "get":
                import cellblock_runner_files as files  # type: ignore[import-not-found]

                found = files.collect_in_child(
                    WORKDIR,
                    [str(p) for p in header.get("patterns") or []],
                    int(header.get("max_files", 100)),
                    int(header.get("max_bytes", 32 << 20)),
                    self.runner._drop_to_sandbox_user,
                )
                for frame in files.frames_for(*found):
                    self.send(frame)
            elif op == "list":
                self.listing()
            else:
                self.send({"event": "error", "message": "unknown request"})
                return 2

    def _in_child(self, work: Any) -> tuple[bool, bytes]:
        """Run ``work(fd)`` in a fork that is the sandbox user; return (ok, what it wrote)."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                self.runner._drop_to_sandbox_user()
                work(w)
                code = 0
            except BaseException as exc:
                with contextlib.suppress(BaseException):
                    os.write(w, repr(exc)[:300].encode())
            os._exit(code)
        os.close(w)
        out = bytearray()
        end = time.monotonic() + 60
        while time.monotonic() < end and len(out) < 4 << 20:
            if not self.runner._readable(r, end - time.monotonic()):
                break
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            out += chunk
        os.close(r)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, bytes(out)

    def put(self, name: str, data: bytes) -> None:
        import cellblock_runner_files as files

        ok, said = self._in_child(lambda fd: files.write_file(WORKDIR, name, data))
        self.send(
            {"event": "put_done", "ok": ok, "error": None if ok else said.decode(errors="replace")}
        )

    def listing(self) -> None:
        import cellblock_runner_files as files

        def work(fd: int) -> None:
            entries = files.list_files(WORKDIR)
            data = json.dumps(entries).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]

        ok, said = self._in_child(work)
        entries: list[Any] = []
        if ok:
            with contextlib.suppress(ValueError):
                entries = json.loads(said)
        self.send({"event": "listing", "ok": ok, "entries": entries})

    def step(self, header: dict[str, Any], code: bytes) -> None:
        step_id = int(header["id"]) & 0x7FFFFFFF
        timeout = float(header["timeout_s"])
        grace = float(header.get("grace_s", 2.0))
        caps = {"stdout": int(header["stdout_cap"]), "stderr": int(header["stderr_cap"])}
        value_cap = int(header.get("value_cap", 65536))
        kept = {"stdout": 0, "stderr": 0}
        counts = {"stdout": 0, "stderr": 0}
        names = {self.out_r: "stdout", self.err_r: "stderr"}
        self._drain_ctl()  # a report the program wrote between steps is not this step's
        cpu_before = self.cgroup.cpu_ns()
        oom_before = self.cgroup.oom_kills() or 0
        memory = self.runner._MemoryBudget(self.memory_budget)
        started = time.monotonic()
        deadline = min(started + timeout, self.lifetime_end)
        with contextlib.suppress(OSError):  # the worker is gone: found below
            os.write(self.req_w, step_id.to_bytes(4, "big") + len(code).to_bytes(4, "big") + code)
        ctl = bytearray()
        report: dict[str, Any] | None = None
        figures: list[bytes] = []
        interrupted_at: float | None = None
        problem: str | None = None
        outcome = None
        while True:
            now = time.monotonic()
            if self.worker_gone():
                outcome = "died"
                break
            if memory.check(now):
                outcome = "oom"
                break
            if interrupted_at is None and now >= deadline:
                interrupted_at = now
                with contextlib.suppress(OSError):
                    os.kill(self.worker, signal.SIGINT)  # once: a second would hit handlers
            if interrupted_at is not None and now >= interrupted_at + grace:
                outcome = "timeout"
                break
            poller = select.poll()
            for fd in (self.out_r, self.err_r, self.ctl_r):
                poller.register(fd, select.POLLIN)
            poller.register(self.request.fd, select.POLLIN)
            wait = 0.05 if not memory.budget else self.runner.MEMORY_SAMPLE_S
            events = []
            with contextlib.suppress(InterruptedError):
                events = poller.poll(int(wait * 1000) + 1)
            for fd, _ in events:
                if fd == self.request.fd:
                    try:
                        more = os.read(fd, 1 << 16)
                    except BlockingIOError:
                        continue
                    if not more:  # the host went away: nobody will read a result
                        self.end("host")
                        return
                    self.request.buf += more
                    continue
                if fd == self.ctl_r:
                    with contextlib.suppress(BlockingIOError):
                        ctl += os.read(fd, 1 << 20)
                    continue
                self._relay(fd, names[fd], step_id, caps, kept, counts)
            while ctl and outcome is None:
                report, figures, problem, used = _parse_report(bytes(ctl))
                if problem:
                    outcome = "protocol"
                elif report is None:
                    break  # incomplete: wait for more
                elif report.get("id") != step_id:
                    del ctl[:used]  # a stale or forged report for another step: not this one's
                    report, figures = None, []
                else:
                    outcome = "reported"
            if outcome is not None:
                break
        ended = time.monotonic()
        # what the worker already wrote: relay it, briefly
        for fd in (self.out_r, self.err_r):
            for _ in range(64):
                if not self._relay(fd, names[fd], step_id, caps, kept, counts):
                    break
        if outcome == "reported":
            self.kill_others()
        oom = memory.exceeded or (self.cgroup.oom_kills() or 0) > oom_before
        if outcome in ("died", "timeout", "protocol", "oom"):
            status = self.worker_status
            self.end(
                {
                    "died": "the interpreter exited"
                    + (f" (status {_describe(status)})" if status is not None else ""),
                    "timeout": "the step did not stop within the grace period after SIGINT",
                    "protocol": f"the interpreter broke the session protocol ({problem})",
                    "oom": "the session went over its memory budget",
                }[outcome]
                if not (outcome == "died" and oom)
                else "the session went over its memory budget"
            )
        cpu_after = self.cgroup.cpu_ns()
        value = None
        if report is not None and isinstance(report.get("value"), str):
            value = report["value"][:value_cap]
        frame = {
            "event": "step_result",
            "id": step_id,
            "outcome": outcome,
            "reported": None if report is None else report.get("outcome"),
            "exit_code": None if report is None else report.get("exit_code"),
            "interrupted": interrupted_at is not None,
            "value": value,
            "value_truncated": bool(
                report is not None
                and isinstance(report.get("value"), str)
                and len(report["value"]) > value_cap
            ),
            "figure_error": None if report is None else report.get("figure_error"),
            "oom_killed": bool(oom),
            "duration_s": round(ended - started, 6),
            "cpu_time_s": None
            if cpu_before is None or cpu_after is None
            else round((cpu_after - cpu_before) / 1e9, 6),
            "peak_memory_bytes": self.cgroup.peak_memory(),
            "stdout_bytes": counts["stdout"],
            "stderr_bytes": counts["stderr"],
            "session_ended": self.ended,
        }
        for number, png in enumerate(figures, 1):
            self.send(
                {
                    "event": "figure",
                    "id": step_id,
                    "name": f"figure-{step_id}-{number}.png",
                    "data": base64.b64encode(png).decode(),
                }
            )
        self.send(frame)

    def _drain_ctl(self) -> None:
        while True:
            try:
                if not os.read(self.ctl_r, 1 << 16):
                    return
            except (BlockingIOError, OSError):
                return

    def _relay(
        self,
        fd: int,
        stream: str,
        step_id: int,
        caps: dict[str, int],
        kept: dict[str, int],
        counts: dict[str, int],
    ) -> bool:
        try:
            chunk = os.read(fd, 1 << 16)
        except (BlockingIOError, OSError):
            return False
        if not chunk:
            return False
        counts[stream] += len(chunk)
        room = caps[stream] - kept[stream]
        if room > 0:
            part = chunk[:room]
            kept[stream] += len(part)
            self.send(
                {
                    "event": "output",
                    "id": step_id,
                    "stream": stream,
                    "data": base64.b64encode(part).decode(),
                }
            )
        return True


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    if os.WIFEXITED(status):
        return f"exit status {os.WEXITSTATUS(status)}"
    return str(status)


def _parse_report(
    data: bytes,
) -> tuple[dict[str, Any] | None, list[bytes], str | None, int]:
    """The worker's report: one JSON line, then the figures' bytes. Program-controlled: every
    field is checked and capped. Returns (report, figures, problem, bytes used); the report is
    None while incomplete."""
    nl = data.find(b"\n")
    if nl < 0:
        return None, [], "report too large" if len(data) > CTL_MAX else None, 0
    if nl > CTL_MAX:
        return None, [], "report too large", 0
    try:
        report = json.loads(data[:nl])
    except ValueError:
        return None, [], "report is not JSON", 0
    if not isinstance(report, dict):
        return None, [], "report is not an object", 0
    sizes = report.get("figures")
    if (
        not isinstance(sizes, list)
        or len(sizes) > FIGURES_MAX
        or not all(isinstance(n, int) and n >= 0 for n in sizes)
        or sum(sizes) > FIGURES_MAX_BYTES
    ):
        return None, [], "bad figure list", 0
    if report.get("outcome") not in ("ok", "error", "interrupted", "exit"):
        return None, [], "bad outcome", 0
    exit_code = report.get("exit_code")
    if exit_code is not None and not (isinstance(exit_code, int) and 0 <= exit_code <= 255):
        return None, [], "bad exit code", 0
    if report.get("value") is not None and not isinstance(report.get("value"), str):
        return None, [], "bad value", 0
    if not isinstance(report.get("id"), int):
        return None, [], "bad step id", 0
    figure_error = report.get("figure_error")
    report["figure_error"] = str(figure_error)[:500] if figure_error is not None else None
    body = data[nl + 1 :]
    if len(body) < sum(sizes):
        return None, [], None, 0
    figures, at = [], 0
    for n in sizes:
        figures.append(body[at : at + n])
        at += n
    return report, figures, None, nl + 1 + at


def serve(chan: int, header: dict[str, Any], request: Any, cgroup: Any) -> int:
    return _Session(chan, header, request, cgroup).serve()
