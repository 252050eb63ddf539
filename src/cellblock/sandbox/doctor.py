"""``cellblock doctor``: verify every sandbox promise from inside a real sandbox."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cellblock.sandbox._doctor_probes import PIDS_PROBE, PROBE
from cellblock.sandbox.interface import Backend, Limits, RunRequest


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
        # gVisor sizes its guest memory from the container's limit, which holds the program's
        # budget (enforced by the runner) plus headroom for gVisor's own kernel
        from cellblock.sandbox.docker import runsc_headroom

        expected = limits.memory_bytes + runsc_headroom(limits)
        return Check(
            "memory limit",
            facts.get("mem_total") == expected,
            f"MemTotal={facts.get('mem_total')} expected {expected} (budget "
            f"{limits.memory_bytes} + gVisor headroom)",
        )
    return Check(
        "memory limit",
        _int(facts.get("memory_limit")) == limits.memory_bytes,
        f"limit={facts.get('memory_limit')} expected {limits.memory_bytes}",
    )


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
