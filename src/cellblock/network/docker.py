"""The Docker gateway: a private internal network per cell and an egress proxy container.

The cell's network is ``internal`` (no NAT, no route out) and its bridge has no host address
(``inhibit_ipv4``), so a cell cannot even reach the host's own services. The proxy container is
on that network and on the engine's default bridge; it runs the stdlib proxy in ``_proxy.py``
on the sandbox image, hardened like a cell, and reports each connection as a JSON line on its
attach stream. Both carry owner labels; the proxy exits when its owner hangs up (``StdinOnce``)
and :func:`reap_networks` removes networks whose owner is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import secrets
import socket
import struct
import threading
import time
from importlib import resources
from typing import Any

from cellblock.network import _pip
from cellblock.network._image import CA_PATH
from cellblock.network.interface import (
    PIP_INDEX,
    Connection,
    Egress,
    Gateway,
    GatewayError,
    summarize,
)

LABEL_NETWORK = "cellblock.network"
PROXY_PORT = 3128
PROXY_USER = "65534:65534"  # nobody: the proxy needs no privilege at all
PROXY_MEMORY = 128 * 1024 * 1024
EGRESS_NETWORK = "bridge"  # the engine's default bridge: NAT to the outside
# Cell networks take a random /28 here; the bridge has no host address, so these addresses
# never appear in the host's routing table.
SUBNET_POOL = ipaddress.ip_network("10.213.0.0/16")
READY_TIMEOUT_S = 30.0
FINISH_TIMEOUT_S = 10.0
MAX_RECORDS = 2000  # per run, in the result and the audit log; counts cover every attempt


def proxy_source() -> str:
    return resources.files("cellblock.network").joinpath("_proxy.py").read_text()


def resolve_egress(egress: Egress) -> Egress:
    """Expand ``$pip-index`` into the hosts of the index the host's pip uses."""
    if PIP_INDEX in egress.allow:
        return egress.resolve(_pip.index_hosts())
    return egress


class DockerGateway(Gateway):
    """One private network and one proxy, for one cell. Create, use, then ``close``."""

    def __init__(
        self,
        client: Any,
        egress: Egress,
        *,
        image: str,
        labels: dict[str, str],
        idle_s: float = 0.0,
    ) -> None:
        self._client = client
        self.egress = resolve_egress(egress)
        self._labels = {**labels, LABEL_NETWORK: "1"}
        self._network_id: str | None = None
        self._network_name = f"cellblock-net-{secrets.token_hex(6)}"
        self._proxy_id: str | None = None
        self._proxy_ip = ""
        self._sock: socket.socket | None = None
        self._raw: Any = None
        self._lines: list[dict[str, Any]] = []  # ready, bye
        self._records: list[dict[str, Any]] = []  # connections, the first MAX_RECORDS
        self._omitted = {"allowed": 0, "denied": 0, "bytes_up": 0, "bytes_down": 0}
        self._budget_cut = False
        self._ready = threading.Event()
        self._bye = threading.Event()
        self._done = threading.Event()
        self._summary: dict[str, Any] | None = None
        from cellblock.network._watchdog import ensure_watchdog

        ensure_watchdog()  # removes this owner's networks if it dies before closing them
        try:
            subnet = self._create_network()
            self._start_proxy(image, subnet, idle_s)
        except BaseException:
            self.close()
            raise

    # -- setup ---------------------------------------------------------------------------------

    def _create_network(self) -> ipaddress.IPv4Network:
        import docker.errors
        from docker.types import IPAMConfig, IPAMPool

        last = ""
        for _ in range(16):
            index = secrets.randbelow(2 ** (28 - SUBNET_POOL.prefixlen))
            subnet = ipaddress.IPv4Network((int(SUBNET_POOL.network_address) + 16 * index, 28))
            hosts = list(subnet.hosts())
            try:
                created = self._client.api.create_network(
                    self._network_name,
                    driver="bridge",
                    internal=True,
                    labels=self._labels,
                    options={
                        "com.docker.network.bridge.inhibit_ipv4": "true",
                        "com.docker.network.bridge.enable_icc": "true",
                    },
                    ipam=IPAMConfig(
                        pool_configs=[IPAMPool(subnet=str(subnet), gateway=str(hosts[0]))]
                    ),
                    check_duplicate=True,
                )
            except docker.errors.APIError as exc:
                last = str(exc.explanation or exc)
                if "overlap" in last.lower() or "in use" in last.lower():
                    continue
                raise GatewayError(
                    f"the engine refused to create the cell network: {last}"
                ) from exc
            self._network_id = created["Id"]
            return subnet
        raise GatewayError(f"no free subnet for the cell network ({last}); run `cellblock gc`")

    def _start_proxy(self, image: str, subnet: ipaddress.IPv4Network, idle_s: float) -> None:
        from docker.types import LogConfig, Ulimit

        from cellblock.sandbox.docker import seccomp_profile

        api = self._client.api
        config = {
            "allow": list(self.egress.allow),
            "ports": list(self.egress.ports),
            "budget_bytes": self.egress.budget_bytes,
            "clients": str(subnet),
            "hosts": [list(p) for p in self.egress.hosts],
            "listen_port": PROXY_PORT,
            "idle_s": idle_s,  # a pooled cell that is never used: the proxy leaves too
        }
        host_config = api.create_host_config(
            auto_remove=True,
            read_only=True,
            cap_drop=["ALL"],
            # the cells' own seccomp allow-list: the proxy needs nothing a program does not
            security_opt=["no-new-privileges:true", f"seccomp={seccomp_profile()}"],
            pids_limit=64,
            mem_limit=PROXY_MEMORY,
            memswap_limit=PROXY_MEMORY,
            nano_cpus=int(0.5e9),
            ulimits=[
                Ulimit(name="nofile", soft=1024, hard=1024),
                Ulimit(name="core", soft=0, hard=0),
            ],
            tmpfs={"/tmp": "rw,nosuid,nodev,noexec,size=1m"},  # noqa: S108 - its own tmpfs
            log_config=LogConfig(type="none"),
            network_mode=EGRESS_NETWORK,
            privileged=False,
        )
        container = api.create_container_config(
            image=image,
            command=["-I", "-u", "-c", proxy_source()],
            entrypoint=["python3"],
            user=PROXY_USER,
            stdin_open=True,
            tty=False,
            hostname="cellblock-proxy",
            working_dir="/tmp",  # noqa: S108
            environment={"CELLBLOCK_EGRESS": json.dumps(config)},
            labels={**self._labels, "cellblock.role": "proxy"},
            host_config=host_config,
        )
        container["StdinOnce"] = True  # the owner hangs up (or dies): the proxy exits
        self._proxy_id = api.create_container_from_config(container)["Id"]
        api.connect_container_to_network(self._proxy_id, self._network_id)
        self._raw = api.attach_socket(
            self._proxy_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )
        self._sock = getattr(self._raw, "_sock", self._raw)
        threading.Thread(target=self._read_lines, name="cellblock-proxy-log", daemon=True).start()
        api.start(self._proxy_id)
        self._ready.wait(READY_TIMEOUT_S)
        if not any(r.get("event") == "ready" for r in self._lines):
            raise GatewayError("the egress proxy did not start; run `cellblock doctor`")
        networks = api.inspect_container(self._proxy_id)["NetworkSettings"]["Networks"]
        self._proxy_ip = networks[self._network_name]["IPAddress"]

    def _read_lines(self) -> None:
        """Demultiplex the attach stream; stdout lines are records, stderr is diagnostics."""
        pending = b""
        sock = self._sock
        try:
            while sock is not None:
                header = _recv_exact(sock, 8)
                if header is None:
                    break
                size = struct.unpack(">I", header[4:8])[0]
                payload = _recv_exact(sock, size) if size else b""
                if payload is None:
                    break
                if header[0] != 1:
                    continue
                pending += payload
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    with contextlib.suppress(ValueError):
                        record = json.loads(line)
                        if isinstance(record, dict):
                            if record.get("event") != "connection":
                                self._lines.append(record)
                            elif len(self._records) < MAX_RECORDS:
                                self._records.append(record)
                            else:  # a flood of attempts must not flood memory or the log
                                self._omitted["allowed" if record.get("allowed") else "denied"] += 1
                                self._omitted["bytes_up"] += int(record.get("bytes_up") or 0)
                                self._omitted["bytes_down"] += int(record.get("bytes_down") or 0)
                                self._budget_cut |= record.get("reason") == "budget exceeded"
                            if record.get("event") == "ready":
                                self._ready.set()
                            elif record.get("event") == "bye":
                                self._bye.set()
        finally:
            self._ready.set()
            self._bye.set()
            self._done.set()

    # -- use -----------------------------------------------------------------------------------

    @property
    def network_name(self) -> str:
        return self._network_name

    @property
    def proxy_address(self) -> str:
        return f"{self._proxy_ip}:{PROXY_PORT}"

    def environment(self) -> dict[str, str]:
        url = f"http://{self.proxy_address}"
        env = {
            "HTTP_PROXY": url,
            "HTTPS_PROXY": url,
            "http_proxy": url,
            "https_proxy": url,
            "PIP_PROXY": url,
            "NO_PROXY": "",
            "no_proxy": "",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        if self.egress.ca_bundle:
            env.update(
                {"PIP_CERT": CA_PATH, "REQUESTS_CA_BUNDLE": CA_PATH, "SSL_CERT_FILE": CA_PATH}
            )
        return env

    def start_run(self) -> None:
        """The cell's program is starting: the proxy must stay until :meth:`finish`."""
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.sendall(b"r")

    def finish(self) -> dict[str, Any]:
        if self._summary is not None:
            return self._summary
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)  # stdin closes: the proxy logs what is open, exits
        self._bye.wait(FINISH_TIMEOUT_S)  # its last line: every connection is reported before it
        connections = [Connection.from_dict(r) for r in self._records]
        bye = next((r for r in self._lines if r.get("event") == "bye"), {})
        exceeded = (
            bool(bye.get("budget_exceeded"))
            or self._budget_cut
            or any(c.reason == "budget exceeded" for c in connections)
        )
        self._summary = summarize(connections, egress=self.egress, budget_exceeded=exceeded)
        omitted = self._omitted["allowed"] + self._omitted["denied"]
        if omitted:  # counted, not listed
            self._summary["attempts"] += omitted
            self._summary["allowed"] += self._omitted["allowed"]
            self._summary["denied"] += self._omitted["denied"]
            self._summary["bytes_up"] += self._omitted["bytes_up"]
            self._summary["bytes_down"] += self._omitted["bytes_down"]
            self._summary["records_omitted"] = omitted
        if not bye:
            self._summary["error"] = (
                "the egress proxy did not report its end; records may be missing"
            )
        return self._summary

    def close_later(self) -> None:
        """:meth:`close` in the background: the caller has its result before the teardown."""
        thread = threading.Thread(target=self.close, name="cellblock-gateway-close")
        with _closing_lock:
            _closing.add(thread)
        thread.start()

    def close(self) -> None:
        try:
            self._close()
        finally:
            with _closing_lock:
                _closing.discard(threading.current_thread())

    def _close(self) -> None:
        from cellblock.sandbox.docker import close_attach

        (sock, raw), self._sock, self._raw = (self._sock, self._raw), None, None
        close_attach(sock, raw)
        proxy, self._proxy_id = self._proxy_id, None
        if proxy is not None:
            _remove_container(self._client, proxy)
        network, self._network_id = self._network_id, None
        if network is not None:
            remove_network(self._client, network)


_closing: set[threading.Thread] = set()
_closing_lock = threading.Lock()


@atexit.register
def _finish_closing() -> None:
    """At exit, let background teardowns finish (the watchdog and gc are the backstop)."""
    with _closing_lock:
        threads = list(_closing)
    for thread in threads:
        thread.join(timeout=20)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    out = bytearray()
    while len(out) < n:
        try:
            chunk = sock.recv(n - len(out))
        except OSError:
            return None
        if not chunk:
            return None
        out += chunk
    return bytes(out)


def _remove_container(client: Any, container_id: str) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        client.api.remove_container(container_id, force=True)


def remove_network(client: Any, network_id: str, *, wait_s: float = 15.0) -> bool:
    """Remove a cell network, first detaching whatever is still on it. True when it is gone."""
    import docker.errors

    end = time.monotonic() + wait_s
    while True:
        try:
            info = client.api.inspect_network(network_id)
        except docker.errors.NotFound:
            return True
        for container_id in (info.get("Containers") or {}):
            with contextlib.suppress(docker.errors.APIError):
                client.api.disconnect_container_from_network(container_id, network_id, force=True)
        try:
            client.api.remove_network(network_id)
            return True
        except docker.errors.NotFound:
            return True
        except docker.errors.APIError:
            if time.monotonic() >= end:
                return False
            time.sleep(0.2)


def reap_networks(client: Any, *, include_live: bool = False) -> int:
    """Remove cell networks whose owner process is gone. Returns how many were removed."""
    from cellblock.sandbox import _owner

    removed = 0
    for net in client.api.networks(filters={"label": f"{LABEL_NETWORK}=1"}):
        labels = net.get("Labels") or {}
        if labels.get("cellblock.managed") != "1":
            continue
        if not include_live and _owner.is_alive(labels):
            continue
        if remove_network(client, net["Id"], wait_s=5.0):
            removed += 1
    return removed


def open_for_cell(
    client: Any,
    egress: Egress,
    *,
    base_image: str,
    user: str,
    labels: dict[str, str],
    idle_s: float = 0.0,
) -> tuple[DockerGateway, str, dict[str, str]]:
    """For a cell about to be created: its gateway, the image to run and the environment."""
    from cellblock.network._image import network_image

    image = network_image(client, base_image, egress.ca_bundle, user)
    gateway = DockerGateway(client, egress, image=base_image, labels=labels, idle_s=idle_s)
    return gateway, image, gateway.environment()
