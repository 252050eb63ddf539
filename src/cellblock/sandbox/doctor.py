"""``cellblock doctor``: verify every sandbox promise from inside a real sandbox."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cellblock.sandbox.interface import Backend, Limits, RunRequest

# Runs inside the sandbox. It prints one JSON object of facts; the host judges them, so that a
# broken probe can never report success by itself.
PROBE = r"""
import ctypes, errno, json, os, socket
facts = {}
def status_field(name):
    for line in open("/proc/self/status"):
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
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
klog = ctypes.create_string_buffer(4096)
facts["gvisor"] = libc.klogctl(3, klog, 4096) > 0 and b"Starting gVisor" in klog.raw
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
print(json.dumps(facts))
"""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


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
        # gVisor answers every system call in its own user-space kernel (the Sentry), which runs
        # under its own host seccomp filter: the program's io_uring never reaches the host kernel.
        # Seccomp reads 0 inside for that reason. Checked here: the program is not on the host
        # kernel at all (gVisor identifies itself in /proc/version).
        checks.append(
            Check(
                "system calls served by gVisor",
                facts.get("gvisor") is True,
                f"kernel log says gVisor: {facts.get('gvisor')}",
            )
        )
    else:
        checks.append(
            Check(
                "seccomp filter mode",
                facts.get("seccomp") == "2",
                f"Seccomp={facts.get('seccomp')}",
            )
        )
        checks.append(
            Check(
                "io_uring refused",
                io_uring.get("rc", 0) < 0 and io_uring.get("errno") == "EPERM",
                f"rc={io_uring.get('rc')} errno={io_uring.get('errno')}",
            )
        )
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
            started < limits.pids,
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


def run_probe(backend: Backend, limits: Limits) -> tuple[list[Check], dict[str, Any]]:
    result = backend.run(RunRequest(PROBE, limits=limits))
    if result.exit_code != 0:
        return [
            Check("probe ran", False, f"status={result.status.value} {result.stderr[-300:]}")
        ], {}
    facts: dict[str, Any] = json.loads(result.stdout)
    checks = [
        Check("probe ran", True, f"in {result.duration_s * 1000:.0f} ms"),
        *judge(facts, limits),
    ]
    checks.append(pids_check(backend, limits))
    return checks, facts


# Runs inside an allowlist cell: no resolver, no direct route, and the proxy refuses a name that
# is not allowed and an allowed name that resolves to loopback. No traffic leaves the machine.
NETWORK_PROBE = r"""
import json, os, socket
facts = {}
try:
    socket.getaddrinfo("cellblock-doctor.invalid", 443)
    facts["dns"] = "resolved"
except OSError as exc:
    facts["dns"] = type(exc).__name__
gateway = None
for line in open("/proc/net/route").read().splitlines()[1:]:
    f = line.split()
    if f[1] == "00000000":
        gateway = socket.inet_ntoa(bytes.fromhex(f[2])[::-1])
targets = [t for t in (gateway, "172.17.0.1") if t]
facts["direct"] = {}
for target in targets:
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect((target, 9))
        facts["direct"][target] = "connected"
    except OSError as exc:
        facts["direct"][target] = type(exc).__name__
    s.close()
proxy = os.environ["HTTPS_PROXY"].split("//", 1)[1]
host, port = proxy.rsplit(":", 1)
for name in ("cellblock-doctor.invalid", "loopback.cellblock-doctor.invalid"):
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(("CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % (name, name)).encode())
    facts[name] = s.recv(200).split(b"\r\n")[0].decode()
    s.close()
print(json.dumps(facts))
"""


def network_checks(backend: Backend, runtime: str) -> list[Check]:
    """Allowlist mode: refused under gVisor here; under runc the cell's only way out is the
    proxy, which refuses what the allowlist does not name and names that resolve inside."""
    from cellblock.errors import CellblockError
    from cellblock.network import Egress

    egress = Egress(
        allow=("loopback.cellblock-doctor.invalid",),
        hosts=(("loopback.cellblock-doctor.invalid", "127.0.0.1"),),
    )
    if runtime == "runsc":
        try:
            Limits(runtime="runsc", network="allowlist", egress=egress)
        except CellblockError as exc:
            return [Check("allowlist refused under gVisor", True, str(exc)[:120])]
        return [Check("allowlist refused under gVisor", False, "Limits accepted it")]
    limits = Limits(runtime=runtime, timeout_s=60, network="allowlist", egress=egress)
    try:
        result = backend.run(RunRequest(NETWORK_PROBE, limits=limits))
    except CellblockError as exc:
        return [Check("allowlist cell", False, str(exc))]
    if result.exit_code != 0:
        detail = f"status={result.status.value} {result.stderr[-300:]}"
        return [Check("allowlist cell", False, detail)]
    facts: dict[str, Any] = json.loads(result.stdout)
    direct = facts.get("direct") or {}
    reasons = [c.get("reason") for c in (result.network or {}).get("connections", [])]
    return [
        Check("allowlist: no resolver", facts.get("dns") == "gaierror", f"lookup -> {facts['dns']}"),
        Check(
            "allowlist: no direct route",
            bool(direct) and "connected" not in direct.values(),
            f"connect -> {direct}",
        ),
        Check(
            "allowlist: unlisted name refused",
            " 403 " in facts.get("cellblock-doctor.invalid", "") + " ",
            facts.get("cellblock-doctor.invalid", ""),
        ),
        Check(
            "allowlist: loopback name refused",
            " 403 " in facts.get("loopback.cellblock-doctor.invalid", "") + " ",
            facts.get("loopback.cellblock-doctor.invalid", ""),
        ),
        Check(
            "allowlist: attempts recorded",
            reasons == ["name not in allowlist", "resolves to a non-public address"],
            f"records: {reasons}",
        ),
    ]
