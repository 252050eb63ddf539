"""The proxy's decisions, imported from its source (it runs them inside its container)."""

from __future__ import annotations

import importlib
import json
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def proxy() -> ModuleType:
    mp = pytest.MonkeyPatch()
    mp.setenv("CELLBLOCK_EGRESS", json.dumps({
        "allow": ["files.cellblock-test.invalid", "*.mirror.cellblock-test.invalid"],
        "ports": [443, 80], "budget_bytes": 4096, "clients": "10.213.0.0/28", "hosts": [],
    }))
    module = importlib.import_module("cellblock.network._proxy")
    mp.undo()
    return module


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.8.8", "10.1.2.3", "172.17.0.1", "192.168.1.1", "169.254.169.254",
    "100.100.100.200", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fd00:ec2::254",
    "fe80::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
])
def test_inside_addresses_are_not_public(proxy: ModuleType, address: str) -> None:
    assert not proxy.public(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "203.0.113.80", "2001:4860::8888"])
def test_public_addresses(proxy: ModuleType, address: str) -> None:
    assert proxy.public(address)


def test_plain_http_is_forwarded_in_origin_form_with_its_own_host(proxy: ModuleType) -> None:
    head = (b"GET http://files.cellblock-test.invalid:8080/a/b?c HTTP/1.1\r\n"
            b"Host: other-site.cellblock-test.invalid\r\nProxy-Authorization: x\r\n"
            b"Connection: keep-alive\r\nAccept: */*")
    method, host, port, forward = proxy.parse_target(head)
    assert (method, host, port) == ("GET", "files.cellblock-test.invalid", 8080)
    assert forward == (b"GET /a/b?c HTTP/1.1\r\nHost: files.cellblock-test.invalid:8080\r\n"
                       b"Accept: */*\r\nConnection: close\r\n\r\n")


def test_connect_targets_and_refused_forms(proxy: ModuleType) -> None:
    assert proxy.parse_target(b"CONNECT x.invalid:443 HTTP/1.1\r\nHost: x") == (
        "CONNECT", "x.invalid", 443, None)
    assert proxy.parse_target(b"GET http://[::1]/ HTTP/1.1")[1:3] == ("[::1]", 80)
    assert proxy.is_literal("[::1]") and proxy.is_literal("10.0.0.1")
    with pytest.raises(ValueError):
        proxy.parse_target(b"GET /relative HTTP/1.1")
    assert proxy.name_allowed("a.mirror.cellblock-test.invalid")
    assert not proxy.name_allowed("mirror.cellblock-test.invalid")
