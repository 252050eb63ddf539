"""``cellblock doctor``: verify every sandbox promise from inside a real sandbox."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cellblock.sandbox.interface import Backend, Limits, RunRequest

# Attacks on the kernel surface and on the noexec mounts, run inside the sandbox (also by the
# tests). Each names what happened; "RAN" means a dropped binary printed its marker.
CONFINEMENT_PROBE = r"""
def _errname(e):
    return errno.errorcode.get(e, str(e))

def _syscall(*args):
    ctypes.set_errno(0)
    rc = libc.syscall(*args)
    return _errname(ctypes.get_errno()) if rc < 0 else "allowed"

def _in_child(action):
    # run action() in a forked child; its stdout (fd 1) comes back
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 1)
        try:
            action()
        except OSError as exc:
            os.write(1, _errname(exc.errno).encode())
        except BaseException as exc:
            os.write(1, type(exc).__name__.encode())
        os._exit(0)
    os.close(w)
    out = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return "RAN" if b"DROPPED-RAN" in out else out.decode(errors="replace")[:80] or "no output"

def _execveat(fd):
    argv = (ctypes.c_char_p * 3)(b"echo", b"DROPPED-RAN", None)
    envp = (ctypes.c_char_p * 1)(None)
    libc.syscall(322, fd, b"", argv, envp, 0x1000)  # execveat(fd, "", AT_EMPTY_PATH)
    raise OSError(ctypes.get_errno(), "execveat")

def _run(argv):
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=20)
    except OSError as exc:
        return _errname(exc.errno)
    return "RAN" if b"DROPPED-RAN" in proc.stdout else "refused (exit %d)" % proc.returncode

def confinement_facts():
    f = {}
    binary = open("/bin/echo", "rb").read()
    memfd = {}
    for flags in (0, 0x10, 0x8):  # default, MFD_EXEC, MFD_NOEXEC_SEAL
        fd = libc.memfd_create(b"probe", flags)
        if fd < 0:
            memfd[str(flags)] = "create " + _errname(ctypes.get_errno())
            continue
        os.write(fd, binary)
        try:
            os.fchmod(fd, 0o755)
        except OSError:
            pass
        memfd[str(flags)] = "execveat %s, /proc/self/fd %s" % (
            _in_child(lambda: _execveat(fd)),
            _in_child(lambda: os.execv("/proc/self/fd/%d" % fd, ["echo", "DROPPED-RAN"])),
        )
        os.close(fd)
    f["memfd_exec"] = memfd
    dropped = {}
    for d in ("/tmp", "/work", "/dev/shm"):
        path = d + "/cellblock-probe-bin"
        try:
            with open(path, "wb") as out:
                out.write(binary)
            os.chmod(path, 0o755)
        except OSError as exc:
            dropped[d] = "cannot write: " + _errname(exc.errno)
            continue
        fd = os.open(path, os.O_RDONLY)
        dropped[d] = {
            "execve": _run([path, "DROPPED-RAN"]),
            "execveat": _in_child(lambda: _execveat(fd)),
            "loader": _run(["/lib64/ld-linux-x86-64.so.2", path, "DROPPED-RAN"]),
        }
        os.close(fd)
        os.unlink(path)
    f["dropped_exec"] = dropped
    nodes = {}
    for kind, mode in (("char", 0o20600), ("block", 0o60600), ("fifo", 0o10600)):
        path = "/tmp/cellblock-probe-" + kind
        try:
            os.mknod(path, mode, os.makedev(1, 3))
            nodes[kind] = "allowed"
            os.unlink(path)
        except OSError as exc:
            nodes[kind] = _errname(exc.errno)
    f["mknod"] = nodes
    namespaces = {}
    for name, flag in (("user", 0x10000000), ("mount", 0x20000), ("time", 0x80),
                       ("net", 0x40000000), ("pid", 0x20000000), ("uts", 0x04000000),
                       ("ipc", 0x08000000), ("cgroup", 0x02000000)):
        def attempt(flag=flag):
            rc = libc.unshare(flag)
            os.write(1, (_errname(ctypes.get_errno()) if rc < 0 else "allowed").encode())
        namespaces[name] = _in_child(attempt)
    def clone3_newuser():
        args = (ctypes.c_uint64 * 8)(0x10000000, 0, 0, 0, 17)  # CLONE_NEWUSER, exit SIGCHLD
        rc = libc.syscall(435, args, 64)
        if rc == 0:
            os._exit(0)  # the new process: a namespace was created
        if rc > 0:
            os.waitpid(rc, 0)
        os.write(1, (_errname(ctypes.get_errno()) if rc < 0 else "allowed").encode())
    f["clone3"] = _in_child(clone3_newuser)
    f["unshare"] = namespaces
    now = (ctypes.c_long * 2)()
    libc.clock_gettime(0, now)
    f["clock_settime"] = _syscall(227, 0, now)
    attr = ctypes.create_string_buffer(128)
    ctypes.memmove(attr, (1).to_bytes(4, "little") + (128).to_bytes(4, "little"), 8)
    f["perf_event_open"] = _syscall(298, attr, 0, -1, -1, 0)  # a software clock event
    klog = ctypes.create_string_buffer(4096)
    f["syslog"] = _syscall(103, 3, klog, 4096)  # SYSLOG_ACTION_READ_ALL
    families = {}
    for name, family, kind in (("vsock", 40, 1), ("alg", 38, 5), ("tipc", 30, 2), ("packet", 17, 3)):
        try:
            socket.socket(family, kind).close()
            families[name] = "created"
        except OSError as exc:
            families[name] = _errname(exc.errno)
    f["socket_families"] = families
    f["keyctl"] = _syscall(250, 0, 0, 0, 0, 0)
    f["bpf"] = _syscall(321, 0, None, 0)
    return f
"""

# What the sandbox can learn about the host. The host compares it with what it knows.
EXPOSURE_PROBE = r"""
def exposure_facts():
    f = {}
    for name in ("cpuinfo", "meminfo", "cmdline", "version"):
        f["proc_" + name] = read("/proc/" + name) or ""
    f["mountinfo"] = read("/proc/self/mountinfo") or ""
    f["cgroup"] = read("/proc/self/cgroup") or ""
    f["uname_release"] = os.uname().release
    info = (ctypes.c_ulong * 16)()
    libc.sysinfo(info)
    f["sysinfo_totalram"] = info[4] * (info[13] & 0xFFFFFFFF or 1)  # totalram * mem_unit
    return f
"""

# Runs inside the sandbox. It prints one JSON object of facts; the host judges them, so that a
# broken probe can never report success by itself.
PROBE = r"""
import ctypes, errno, json, os, socket, subprocess
facts = {}
def status_field(name):
    for line in open("/proc/self/status"):
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
CONFINEMENT
facts["uid"] = os.getuid()
facts["euid"] = os.geteuid()
facts["cap_eff"] = status_field("CapEff")
facts["cap_bnd"] = status_field("CapBnd")
libc = ctypes.CDLL(None, use_errno=True)
facts["no_new_privs"] = status_field("NoNewPrivs") or str(libc.prctl(39, 0, 0, 0, 0))
facts["seccomp"] = status_field("Seccomp")
params = ctypes.create_string_buffer(120)
rc = libc.syscall(425, 1, params)  # io_uring_setup(1, &params)
facts["io_uring"] = {"rc": rc, "errno": errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))}
if rc >= 0:
    os.close(rc)
rc = libc.syscall(250, 0, 0, 0, 0, 0)  # keyctl
facts["keyctl_errno"] = errno.errorcode.get(ctypes.get_errno(), "")
try:
    facts["interfaces"] = sorted(name for _, name in socket.if_nameindex())
except OSError as exc:
    facts["interfaces"] = ["error: %s" % exc]
try:
    s = socket.create_connection(("1.1.1.1", 53), timeout=1)
    s.close()
    facts["outbound_tcp"] = "connected"
except OSError as exc:
    facts["outbound_tcp"] = type(exc).__name__
try:
    open("/usr/cellblock-probe", "w").close()
    facts["root_writable"] = True
except OSError as exc:
    facts["root_writable"] = errno.errorcode.get(exc.errno, str(exc.errno))
try:
    with open("/work/probe.txt", "w") as f:
        f.write("ok")
    facts["work_writable"] = open("/work/probe.txt").read() == "ok"
except OSError as exc:
    facts["work_writable"] = str(exc)
def read(path):
    try:
        return open(path).read().strip()
    except OSError:
        return None
facts["pids_max"] = read("/sys/fs/cgroup/pids/pids.max") or read("/sys/fs/cgroup/pids.max")
facts["memory_limit"] = read("/sys/fs/cgroup/memory/memory.limit_in_bytes") or read("/sys/fs/cgroup/memory.max")
for line in open("/proc/meminfo"):
    if line.startswith("MemTotal:"):
        facts["mem_total"] = int(line.split()[1]) * 1024
facts["memsw_limit"] = read("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") or read("/sys/fs/cgroup/memory.swap.max")
facts["gvisor"] = "gvisor" in (read("/proc/cmdline") or "")
facts["sockets"] = [p for p in ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock", "/run/podman/podman.sock") if os.path.exists(p)]
facts["mounts_rw"] = sorted({l.split()[1] for l in open("/proc/mounts") if " rw," in l and l.split()[1].startswith(("/work", "/tmp", "/dev/shm", "/"))})
facts["setuid_files"] = []
for d in ("/usr/bin", "/usr/sbin", "/bin", "/sbin"):
    try:
        for name in os.listdir(d):
            p = os.path.join(d, name)
            try:
                if os.stat(p).st_mode & 0o6000:
                    facts["setuid_files"].append(p)
            except OSError:
                pass
    except OSError:
        pass
facts.update(confinement_facts())
facts.update(exposure_facts())
print(json.dumps(facts))
""".replace("CONFINEMENT", CONFINEMENT_PROBE + EXPOSURE_PROBE)


@dataclass(frozen=True)
class Check:
    """One verified promise. An advisory check reports what cellblock cannot change on this
    engine or runtime (documented in docs/sandbox.md); it is shown but never fails the doctor."""

    name: str
    ok: bool
    detail: str
    advisory: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "advisory": self.advisory}


def failed_checks(checks: list[Check]) -> list[Check]:
    """The checks that fail the doctor: not ok and not advisory."""
    return [c for c in checks if not c.ok and not c.advisory]


def _all_refused(values: dict[str, Any], errno_name: str = "EPERM") -> bool:
    return bool(values) and all(v == errno_name for v in values.values())


def _never_ran(value: Any) -> bool:
    return "RAN" not in json.dumps(value)


def confinement_checks(facts: dict[str, Any], limits: Limits) -> list[Check]:
    """The kernel surface and the noexec mounts, attacked for real by the probe."""
    mknod = facts.get("mknod") or {}
    families = facts.get("socket_families") or {}
    dropped = facts.get("dropped_exec") or {}
    exec_only = {
        d: {k: v.get(k) for k in ("execve", "execveat")} if isinstance(v, dict) else v
        for d, v in dropped.items()
    }
    loader = {d: v.get("loader") if isinstance(v, dict) else v for d, v in dropped.items()}
    checks = [
        Check(
            "namespaces refused",
            _all_refused(facts.get("unshare") or {}) and facts.get("clone3") in ("ENOSYS", "EPERM"),
            f"unshare -> {facts.get('unshare')}; clone3(CLONE_NEWUSER) -> {facts.get('clone3')}",
        ),
        Check(
            "clock cannot be set",
            facts.get("clock_settime") == "EPERM",
            f"clock_settime -> {facts.get('clock_settime')}",
        ),
        Check(
            "perf events refused",
            facts.get("perf_event_open") == "EPERM",
            f"perf_event_open -> {facts.get('perf_event_open')}",
        ),
        Check(
            "kernel log refused", facts.get("syslog") == "EPERM", f"syslog -> {facts.get('syslog')}"
        ),
        Check(
            "keyrings and bpf refused",
            facts.get("keyctl") == "EPERM" and facts.get("bpf") == "EPERM",
            f"keyctl -> {facts.get('keyctl')}, bpf -> {facts.get('bpf')}",
        ),
        Check(
            "unusual socket families refused",
            bool(families) and "created" not in families.values(),
            f"socket -> {families}",
        ),
        Check(
            "device nodes refused",
            mknod.get("char") == "EPERM" and mknod.get("block") == "EPERM",
            f"mknod -> {mknod}",
        ),
        Check(
            "memfd binaries cannot run",
            bool(facts.get("memfd_exec")) and _never_ran(facts.get("memfd_exec")),
            f"memfd_create(flags) -> {facts.get('memfd_exec')}",
        ),
        Check(
            "dropped binaries cannot run",
            bool(exec_only) and _never_ran(exec_only),
            f"{exec_only}",
        ),
    ]
    if limits.runtime == "runsc":
        # gVisor (this release) does not refuse executable mappings of files on noexec mounts, so
        # the dynamic loader runs a dropped binary; nothing in the container's configuration can
        # change that. It gives no power that ctypes does not already (see docs/sandbox.md).
        checks.append(
            Check(
                "loader cannot map noexec files",
                _never_ran(loader),
                f"ld.so FILE -> {loader}" + ("" if _never_ran(loader) else " (a gVisor gap)"),
                advisory=True,
            )
        )
    else:
        checks.append(
            Check(
                "loader cannot map noexec files",
                bool(loader) and _never_ran(loader),
                f"ld.so FILE -> {loader}",
            )
        )
    return checks


def _mount_roots(mountinfo: str) -> list[str]:
    """Source paths of bind mounts (mountinfo's 4th field) that name something outside the
    container: the engine's own files. Masked paths ("/null") and proc subtrees are not."""
    roots = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5 or " - proc " in line or " - cgroup" in line:
            continue
        if fields[3] not in ("/", "/null"):
            roots.append(fields[3])
    return roots


def exposure_checks(facts: dict[str, Any], limits: Limits) -> list[Check]:
    """What the program can learn about the host. Masked files must be empty (runc) or gVisor's
    own; what no engine option can hide is reported as advisory."""
    gvisor = limits.runtime == "runsc"
    cmdline = str(facts.get("proc_cmdline", ""))
    cpuinfo = str(facts.get("proc_cpuinfo", ""))
    meminfo = str(facts.get("proc_meminfo", ""))
    cgroup = str(facts.get("cgroup", ""))
    mountinfo = str(facts.get("mountinfo", ""))
    roots = _mount_roots(mountinfo)
    # with a private cgroup namespace every cgroup is "/" (gVisor shows none)
    cgroup_roots = [line.split(":", 2)[2] for line in cgroup.splitlines() if line.count(":") >= 2]
    cgroup_roots += [
        r for line in mountinfo.splitlines() if " - cgroup" in line for r in line.split()[3:4]
    ]
    cgroup_roots = [r for r in cgroup_roots if r != "/"]
    total = facts.get("sysinfo_totalram")
    checks = [
        Check(
            "host kernel command line hidden",
            cmdline == "" or (gvisor and "gvisor" in cmdline),
            f"/proc/cmdline: {cmdline[:60]!r}",
        ),
        Check(
            "host memory file hidden",
            meminfo == "" or (gvisor and "gvisor" in cmdline),  # gVisor's own accounting
            "/proc/meminfo " + ("masked" if not meminfo else f"MemTotal={facts.get('mem_total')}"),
        ),
        Check(
            "engine cgroup path hidden",
            cgroup_roots == [],
            f"cgroup paths: {cgroup_roots or 'none'}",
        ),
        Check(
            "host CPU description hidden",
            cpuinfo == "",
            "/proc/cpuinfo masked"
            if not cpuinfo
            else "gVisor's /proc/cpuinfo names the host CPU's vendor, family and feature flags",
            advisory=True,
        ),
        Check(
            "no engine paths in mountinfo",
            not roots,
            f"bind mounts from {roots}: the engine's /etc/hostname (per-process file, "
            "cannot be masked)"
            if roots
            else "none",
            advisory=True,
        ),
        Check(
            "host kernel release hidden",
            gvisor,
            f"uname -r: {facts.get('uname_release')}"
            + ("" if gvisor else " (the host's: uname(2) and /proc/version cannot be masked)"),
            advisory=True,
        ),
        Check(
            "host memory size hidden",
            gvisor or total == limits.memory_bytes,  # gVisor reports its own memory
            f"sysinfo(2) totalram={total}"
            + (
                ""
                if gvisor or total == limits.memory_bytes
                else " (the host's; the limit is the cgroup's)"
            ),
            advisory=True,
        ),
    ]
    return checks


def judge(facts: dict[str, Any], limits: Limits) -> list[Check]:
    """Turn the probe's facts into pass/fail checks against the promised hardening."""
    checks = [
        Check(
            "non-root user",
            facts.get("uid") not in (0, None) and facts.get("euid") != 0,
            f"uid={facts.get('uid')}",
        ),
        Check(
            "no effective capabilities",
            _hex_zero(facts.get("cap_eff")),
            f"CapEff={facts.get('cap_eff')}",
        ),
        Check(
            "no-new-privileges",
            facts.get("no_new_privs") == "1",
            f"NoNewPrivs={facts.get('no_new_privs')}",
        ),
    ]
    io_uring = facts.get("io_uring") or {}
    if limits.runtime == "runsc":
        checks.append(
            Check(
                "system calls served by gVisor",
                facts.get("gvisor") is True,
                f"gVisor's /proc/cmdline: {facts.get('gvisor')}",
            )
        )
    # The same allow-list must apply under both runtimes (gVisor applies it inside its own kernel
    # only when runsc is registered with --oci-seccomp).
    hint = (
        "; register runsc with --oci-seccomp (scripts/setup-gvisor.sh)"
        if limits.runtime == "runsc"
        else ""
    )
    checks.append(
        Check(
            "seccomp filter mode",
            facts.get("seccomp") == "2",
            f"Seccomp={facts.get('seccomp')}" + ("" if facts.get("seccomp") == "2" else hint),
        )
    )
    checks.append(
        Check(
            "io_uring refused",
            io_uring.get("rc", 0) < 0 and io_uring.get("errno") == "EPERM",
            f"rc={io_uring.get('rc')} errno={io_uring.get('errno')}",
        )
    )
    checks += confinement_checks(facts, limits) + exposure_checks(facts, limits)
    checks += [
        Check(
            "only loopback network",
            facts.get("interfaces") in (["lo"], []),
            f"interfaces={facts.get('interfaces')}",
        ),
        Check(
            "outbound connections fail",
            facts.get("outbound_tcp") != "connected",
            f"connect -> {facts.get('outbound_tcp')}",
        ),
        Check(
            "read-only root",
            facts.get("root_writable") in ("EROFS", "EACCES"),
            f"write /usr -> {facts.get('root_writable')}",
        ),
        Check(
            "work directory writable",
            facts.get("work_writable") is True,
            f"/work -> {facts.get('work_writable')}",
        ),
        _memory_check(facts, limits),
        Check("no engine socket", not facts.get("sockets"), f"found={facts.get('sockets')}"),
        Check(
            "no setuid/setgid files",
            not facts.get("setuid_files"),
            f"found={facts.get('setuid_files')}",
        ),
    ]
    return checks


def _memory_check(facts: dict[str, Any], limits: Limits) -> Check:
    if limits.runtime == "runsc":
        # gVisor sizes its guest memory from the container's limit
        return Check(
            "memory limit",
            facts.get("mem_total") == limits.memory_bytes,
            f"MemTotal={facts.get('mem_total')} expected {limits.memory_bytes}",
        )
    return Check(
        "memory limit",
        _int(facts.get("memory_limit")) == limits.memory_bytes,
        f"limit={facts.get('memory_limit')} expected {limits.memory_bytes}",
    )


# Tries to start twice the pids limit of threads; the limit must stop it (or end the sandbox).
PIDS_PROBE = r"""
import threading
ev = threading.Event()
started = 0
try:
    for _ in range(LIMIT * 2):
        threading.Thread(target=ev.wait, daemon=True).start()
        started += 1
except RuntimeError:
    pass
ev.set()
print(started)
"""


def pids_check(backend: Backend, limits: Limits) -> Check:
    result = backend.run(RunRequest(PIDS_PROBE.replace("LIMIT", str(limits.pids)), limits=limits))
    started = _int(result.stdout.strip())
    if started is not None and result.exit_code == 0:
        return Check(
            "pids limit",
            0 < started < limits.pids,  # 0: threads cannot start at all (a broken filter)
            f"started {started} threads under a limit of {limits.pids}",
        )
    ended = result.status.value in ("killed", "error") and started is None
    return Check(
        "pids limit",
        ended,
        f"the sandbox ended ({result.status.value}) before exceeding {limits.pids}",
    )


def _hex_zero(value: Any) -> bool:
    try:
        return int(str(value), 16) == 0
    except ValueError:
        return False


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def registration_checks(backend: Backend, limits: Limits) -> list[Check]:
    """runsc must be registered with --oci-seccomp, or gVisor ignores the seccomp profile."""
    if limits.runtime != "runsc":
        return []
    client = getattr(backend, "client", None)
    if client is None:
        return []
    entry = (client.info().get("Runtimes") or {}).get("runsc") or {}
    args = list(entry.get("runtimeArgs") or entry.get("RuntimeArgs") or [])
    return [
        Check(
            "runsc applies seccomp",
            "--oci-seccomp" in args,
            f"runtimeArgs={args}"
            + ("" if "--oci-seccomp" in args else "; run scripts/setup-gvisor.sh to re-register"),
        )
    ]


def run_probe(backend: Backend, limits: Limits) -> tuple[list[Check], dict[str, Any]]:
    result = backend.run(RunRequest(PROBE, limits=limits))
    if result.exit_code != 0:
        return [
            Check("probe ran", False, f"status={result.status.value} {result.stderr[-300:]}")
        ], {}
    facts: dict[str, Any] = json.loads(result.stdout)
    checks = [
        Check("probe ran", True, f"in {result.duration_s * 1000:.0f} ms"),
        *registration_checks(backend, limits),
        *judge(facts, limits),
    ]
    checks.append(pids_check(backend, limits))
    return checks, facts
