"""Allowlist mode on the real engine: a real proxy container on a real internal network.

Network safety: every denied destination is a name under .invalid, an address of this machine,
or a server the test started; the only traffic that leaves the machine is pip's, to the package
index the host's pip is configured to use, through the proxy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cellblock.network import Egress
from cellblock.network._pip import ca_bundle_path
from cellblock.sandbox import Limits, Pool, RunRequest
from tests.conftest import managed_containers, wait_until

pytestmark = pytest.mark.docker

PACKAGE = "six==1.16.0"  # small, pure Python, one wheel

CONNECT_HELPER = r"""
import json, os, socket
PROXY = os.environ["HTTPS_PROXY"].split("//", 1)[1]
def via_proxy(request):
    host, port = PROXY.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=20)
    s.sendall(request.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.split(b"\r\n")[0].decode()
def connect(name_port):
    return via_proxy("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (name_port, name_port))
def direct(address, port):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect((address, port))
        return "connected"
    except OSError as exc:
        return type(exc).__name__
    finally:
        s.close()
"""


def allowlist_limits(egress: Egress, **changes: object) -> Limits:
    return Limits(
        runtime="runc",
        network="allowlist",
        egress=egress,
        timeout_s=180,
        memory_bytes=512 * 1024 * 1024,
        pids=128,
    ).replace(**changes)


def test_everything_but_the_allowlist_is_refused_and_recorded(
    backend, trap_servers, bridge_gateway  # type: ignore[no-untyped-def]
) -> None:
    loopback, everywhere = trap_servers
    egress = Egress(
        # localhost resolves (inside the proxy) to loopback: a name that rebinds inside
        allow=("localhost", "private.cellblock-test.invalid", "meta.cellblock-test.invalid"),
        ports=(443, 80, loopback.port),
        hosts=(
            ("private.cellblock-test.invalid", "10.0.0.1"),
            ("meta.cellblock-test.invalid", "169.254.169.254"),
        ),
    )
    code = CONNECT_HELPER + textwrap.dedent(f"""
        facts = {{}}
        try:
            socket.getaddrinfo("dns-probe.cellblock-test.invalid", 443)
            facts["dns"] = "resolved"
        except socket.gaierror as exc:
            facts["dns"] = exc.errno == socket.EAI_AGAIN and "no resolver" or str(exc)
        gateway = None
        for line in open("/proc/net/route").read().splitlines()[1:]:
            f = line.split()
            if f[1] == "00000000":
                gateway = socket.inet_ntoa(bytes.fromhex(f[2])[::-1])
        facts["direct"] = [
            direct("{bridge_gateway}", {everywhere.port}),
            direct(gateway, {everywhere.port}),
            direct("127.0.0.1", {loopback.port}),
        ]
        facts["denied_name"] = connect("denied.cellblock-test.invalid:443")
        facts["literal_host"] = connect("{bridge_gateway}:{everywhere.port}")
        facts["literal_loopback"] = connect("127.0.0.1:{loopback.port}")
        facts["rebind_loopback"] = connect("localhost:{loopback.port}")
        facts["rebind_private"] = connect("private.cellblock-test.invalid:443")
        facts["rebind_metadata"] = connect("meta.cellblock-test.invalid:80")
        facts["port"] = connect("localhost:22")
        facts["plain_http"] = via_proxy(
            "GET http://localhost:{loopback.port}/ HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n"
        )
        print(json.dumps(facts))
    """)
    result = backend.run(RunRequest(code, limits=allowlist_limits(egress, timeout_s=90)))
    assert result.exit_code == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["dns"] == "no resolver"
    assert "connected" not in facts["direct"], facts["direct"]
    for key in ("denied_name", "literal_host", "literal_loopback", "rebind_loopback",
                "rebind_private", "rebind_metadata", "port", "plain_http"):
        assert facts[key].startswith("HTTP/1.1 403"), (key, facts[key])
    assert loopback.accepted == [] and everywhere.accepted == []
    reasons = {(c["host"], c["port"]): c for c in result.network["connections"]}
    expect = {
        ("denied.cellblock-test.invalid", 443): "name not in allowlist",
        (bridge_gateway, everywhere.port): "address literals are not allowed",
        ("127.0.0.1", loopback.port): "address literals are not allowed",
        ("localhost", loopback.port): "resolves to a non-public address",
        ("private.cellblock-test.invalid", 443): "resolves to a non-public address",
        ("meta.cellblock-test.invalid", 80): "resolves to a non-public address",
        ("localhost", 22): "port not allowed",
    }
    for key, reason in expect.items():
        assert reasons[key]["reason"] == reason and not reasons[key]["allowed"], key
    assert reasons[("meta.cellblock-test.invalid", 80)]["address"] == "169.254.169.254"
    assert result.network["allowed"] == 0 and result.network["denied"] == 8
    assert result.network["bytes_up"] == result.network["bytes_down"] == 0


def test_the_byte_budget_is_enforced(backend) -> None:  # type: ignore[no-untyped-def]
    bundle = ca_bundle_path()
    egress = Egress(
        allow=("$pip-index",), budget_bytes=8 * 1024, ca_bundle=None if bundle is None else str(bundle)
    )
    code = textwrap.dedent(f"""
        import subprocess, sys
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
                            "--retries", "0", "-d", "/tmp/d", "{PACKAGE}"], capture_output=True)
        print(r.returncode)
    """)
    result = backend.run(RunRequest(code, limits=allowlist_limits(egress)))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() != "0"  # pip could not fetch within 8 KiB
    summary = result.network
    assert summary["budget_exceeded"] is True
    assert any(c["reason"] == "budget exceeded" for c in summary["connections"])
    assert summary["bytes_up"] + summary["bytes_down"] <= 8 * 1024


def fetch_policy(tmp_path: Path) -> Path:
    policy = tmp_path / "fetch.yaml"
    policy.write_text(textwrap.dedent(f"""
        version: 1
        name: fetch
        assessment:
          deep: never
        decisions: {{none: allow, low: allow, medium: allow, high: allow, critical: block}}
        profiles:
          fetch:
            memory: 512m
            pids: 128
            timeout: 180s
            network: allowlist
        decision_profiles: {{allow: fetch, restrict: fetch, review: fetch}}
        network:
          allow: [$pip-index]
        audit:
          directory: {tmp_path / "audit"}
    """))
    return policy


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellblock.cli", *args],
        capture_output=True, text=True, timeout=400, env=os.environ.copy(),
    )


def test_pip_install_through_the_proxy_with_cellblock_run(tmp_path: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    policy = fetch_policy(tmp_path)
    program = tmp_path / "fetch.py"
    program.write_text(textwrap.dedent(f"""
        import subprocess, sys, urllib.request
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-cache-dir",
                               "--target", "/tmp/pkgs", "{PACKAGE}"], capture_output=True, text=True)
        print(done.returncode, done.stderr[-500:])
        sys.path.insert(0, "/tmp/pkgs")
        import six
        print("six", six.__version__)
        try:
            urllib.request.urlopen("https://elsewhere.cellblock-test.invalid/", timeout=20)
            print("reached elsewhere")
        except OSError as exc:
            print("refused", exc)
    """))
    proc = cli("run", "--policy", str(policy), "--json", str(program))
    assert proc.returncode == 0, proc.stderr + proc.stdout[-2000:]
    data = json.loads(proc.stdout)
    assert "six 1.16.0" in data["stdout"], data["stdout"]
    assert "refused" in data["stdout"]
    network = data["network"]
    assert network["allowed"] >= 1 and network["denied"] == 1 and network["bytes_down"] > 0
    hosts = {c["host"] for c in network["connections"] if c["allowed"]}
    assert hosts <= set(network["allow"]) and "$pip-index" not in network["allow"]
    # every attempt is in the audit log under the run's id, and the decision names the loosening
    records = []
    for segment in sorted((tmp_path / "audit").glob("seg-*.jsonl")):
        records += [json.loads(line)["record"] for line in segment.read_bytes().splitlines()]
    mine = [r for r in records if r["payload"].get("run_id") == data["run_id"]]
    connections = [r["payload"] for r in mine if r["type"] == "network.connection"]
    assert len(connections) == network["attempts"]
    assert {c["host"] for c in connections if not c["allowed"]} == {
        "elsewhere.cellblock-test.invalid"
    }
    decision = next(r["payload"] for r in mine if r["type"] == "decision")
    assert "profiles.fetch.network" in decision["loosenings"]
    assert "limits.network" in decision["loosenings"]
    finished = next(r["payload"] for r in mine if r["type"] == "execution.finished")
    assert finished["network"]["attempts"] == network["attempts"]


def test_the_pool_never_mixes_network_modes(backend) -> None:  # type: ignore[no-untyped-def]
    code = textwrap.dedent("""
        import os, socket
        print(sorted(n for _, n in socket.if_nameindex()), "HTTPS_PROXY" in os.environ)
    """)
    closed = Limits(runtime="runc", timeout_s=30)
    open_ = allowlist_limits(Egress(allow=("only.cellblock-test.invalid",)), timeout_s=30)
    with Pool(backend, size=1) as pool:
        pool.warm(closed, wait=True, timeout_s=120)
        pool.warm(open_, wait=True, timeout_s=120)
        for _ in range(2):
            shut = pool.run(RunRequest(code, limits=closed))
            assert shut.stdout.strip() == "['lo'] False" and shut.network is None
            opened = pool.run(RunRequest(code, limits=open_))
            assert opened.stdout.strip() == "['eth0', 'lo'] True"
            assert opened.network is not None and opened.network["allow"] == [
                "only.cellblock-test.invalid"
            ]


OWNER = """
import sys, time
from cellblock.network import Egress
from cellblock.sandbox import Limits
from cellblock.sandbox.docker import DockerBackend
cell = DockerBackend().prepare(Limits(network="allowlist", egress=Egress(), timeout_s=30), idle_s=600)
print(cell.container_id, cell.gateway.network_name, flush=True)
time.sleep(600)
"""


def test_a_killed_owner_leaves_nothing_behind(docker_client) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        cell_id, network = proc.stdout.readline().split()
        owned = managed_containers(docker_client, proc.pid)
        assert {c["Labels"].get("cellblock.role") for c in owned} == {None, "proxy"}
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # the engine closes both attach streams: the cell and the proxy end and remove themselves
    assert wait_until(lambda: managed_containers(docker_client, proc.pid) == [], timeout=60)
    # and the owner's watchdog removes its network (gc would too)
    assert wait_until(lambda: docker_client.api.networks(names=[network]) == [], timeout=90)
    assert cell_id


def test_proxy_and_network_are_hardened_and_kept_by_gc_while_the_owner_lives(
    backend, docker_client  # type: ignore[no-untyped-def]
) -> None:
    from cellblock.sandbox.docker import reap

    cell = backend.prepare(allowlist_limits(Egress(), timeout_s=30), idle_s=120)
    try:
        net = docker_client.api.inspect_network(cell.gateway.network_name)
        assert net["Internal"] is True
        assert net["Options"]["com.docker.network.bridge.inhibit_ipv4"] == "true"
        assert net["Labels"]["cellblock.owner_pid"] == str(os.getpid())
        members = {c["Name"] for c in net["Containers"].values()}
        assert len(members) == 2  # the cell and its proxy, nothing else
        proxy = next(
            c for c in managed_containers(docker_client, os.getpid())
            if c["Labels"].get("cellblock.role") == "proxy"
            and cell.gateway.network_name in c["NetworkSettings"]["Networks"]
        )
        info = docker_client.api.inspect_container(proxy["Id"])
        host = info["HostConfig"]
        assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
        assert not host["CapAdd"] and not host["Privileged"]
        assert "no-new-privileges:true" in host["SecurityOpt"]
        assert any(o.startswith("seccomp=") for o in host["SecurityOpt"])
        assert host["Memory"] > 0 and host["PidsLimit"] == 64 and host["NanoCpus"] > 0
        assert host["LogConfig"]["Type"] == "none" and host["AutoRemove"] is True
        assert info["Config"]["User"] == "65534:65534"
        cell_info = docker_client.api.inspect_container(cell.container_id)
        assert cell_info["HostConfig"]["Dns"] == ["127.0.0.1"]
        assert list(cell_info["NetworkSettings"]["Networks"]) == [cell.gateway.network_name]
        reap(docker_client)
        assert docker_client.api.networks(names=[cell.gateway.network_name]) != []
        name = cell.gateway.network_name
    finally:
        cell.discard()
    assert wait_until(lambda: docker_client.api.networks(names=[name]) == [], timeout=30)


def test_a_flood_of_attempts_is_counted_not_listed(backend) -> None:  # type: ignore[no-untyped-def]
    from cellblock.network.docker import MAX_RECORDS

    extra = 25
    code = CONNECT_HELPER + textwrap.dedent(f"""
        for i in range({MAX_RECORDS + extra}):
            connect("flood-%d.cellblock-test.invalid:443" % i)
        print("done")
    """)
    egress = Egress(allow=("only.cellblock-test.invalid",))
    result = backend.run(RunRequest(code, limits=allowlist_limits(egress, timeout_s=170)))
    assert result.stdout.strip() == "done", result.stderr
    summary = result.network
    assert summary["attempts"] == summary["denied"] == MAX_RECORDS + extra
    assert len(summary["connections"]) == MAX_RECORDS
    assert summary["records_omitted"] == extra


def test_cli_flags_can_only_take_network_away(tmp_path: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    policy = fetch_policy(tmp_path)
    program = tmp_path / "ifaces.py"
    program.write_text("import socket\nprint(sorted(n for _, n in socket.if_nameindex()))\n")
    proc = cli("run", "--policy", str(policy), "--no-network", "--json", str(program))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["stdout"].strip() == "['lo']" and data["network"] is None
    # gVisor here has no networking: asking for it with an allowlist profile is refused, clearly
    proc = cli("run", "--policy", str(policy), "--runtime", "runsc", str(program))
    assert proc.returncode == 64
    assert "gVisor" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unused_pooled_cell_proxy_leaves_with_its_idle_cell(backend, docker_client) -> None:  # type: ignore[no-untyped-def]
    cell = backend.prepare(allowlist_limits(Egress(), timeout_s=30), idle_s=2)
    try:
        network = cell.gateway.network_name

        def proxy_gone() -> bool:
            return not [
                c for c in managed_containers(docker_client, os.getpid())
                if network in c["NetworkSettings"]["Networks"]
            ]

        assert wait_until(proxy_gone, timeout=90)  # the runner and the proxy both left
    finally:
        cell.discard()
