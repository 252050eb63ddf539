"""The programs ``cellblock doctor`` runs inside a sandbox. Each prints facts; the host
(``doctor.py``) judges them, so that a broken probe can never report success by itself."""

from __future__ import annotations

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
    for name, family, kind in (
        ("vsock", 40, 1), ("alg", 38, 5), ("tipc", 30, 2), ("packet", 17, 3)
    ):
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
err = ctypes.get_errno()
facts["io_uring"] = {"rc": rc, "errno": errno.errorcode.get(err, str(err))}
if rc >= 0:
    os.close(rc)
rc = libc.syscall(250, 0, 0, 0, 0, 0)  # keyctl
facts["keyctl_errno"] = errno.errorcode.get(ctypes.get_errno(), "")
try:
    facts["interfaces"] = sorted(name for _, name in socket.if_nameindex())
except OSError as exc:
    facts["interfaces"] = ["error: %s" % exc]
try:
    # the engine's default bridge gateway: an address of this machine, never one outside it
    s = socket.create_connection(("172.17.0.1", 53), timeout=1)
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
facts["memory_limit"] = (
    read("/sys/fs/cgroup/memory/memory.limit_in_bytes") or read("/sys/fs/cgroup/memory.max")
)
for line in open("/proc/meminfo"):
    if line.startswith("MemTotal:"):
        facts["mem_total"] = int(line.split()[1]) * 1024
facts["memsw_limit"] = (
    read("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
    or read("/sys/fs/cgroup/memory.swap.max")
)
facts["gvisor"] = "gvisor" in (read("/proc/cmdline") or "")
facts["sockets"] = [
    p
    for p in ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
              "/run/podman/podman.sock")
    if os.path.exists(p)
]
facts["mounts_rw"] = sorted({
    l.split()[1]
    for l in open("/proc/mounts")
    if " rw," in l and l.split()[1].startswith(("/work", "/tmp", "/dev/shm", "/"))
})
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
