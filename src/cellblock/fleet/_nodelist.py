"""The signed node list: which key and which log belong to which node, signed by the dispatcher.

Format (one JSON object, canonical JSON signed as an audit checkpoint is)::

    {"kind": "cellblock.fleet.node-list", "v": 1, "version": 3, "ts": "...",
     "fleet_log_id": "<the dispatcher's log id>",
     "dispatcher_key": "ed25519:<sha256 of the raw public key>",
     "dispatcher_public_key": "<raw Ed25519 public key, hex>",
     "nodes": [{"name": "a", "key_id": "ed25519:...", "public_key": "<hex>",
                "log_id": "...", "runtimes": ["runc", "runsc"], "host": "..."}],
     "alg": "ed25519", "sig": "<128 hex>"}

The signature covers the domain tag ``cellblock.audit.signed.v1\\0`` and the canonical JSON of
every field but ``sig``. Its ``kind`` field keeps it from ever being read as a checkpoint (and a
checkpoint from being read as a node list). The dispatcher also records each list's SHA-256 in its
own log (``fleet.nodes``), so a list it signed but never used is noticed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cellblock.audit import AuditKeyError
from cellblock.audit._format import canonical, now_ts
from cellblock.audit._keys import (
    check_signature,
    key_id,
    public_from_hex,
    raw_public,
    sign_payload,
)
from cellblock.fleet.interface import FleetError, NodeIdentity

KIND: Final = "cellblock.fleet.node-list"
VERSION: Final = 1


class NodeListError(FleetError):
    """A node list is unreadable, malformed, or not signed by the expected dispatcher key."""

    exit_code = 2


def build_node_list(
    key: Ed25519PrivateKey, fleet_log_id: str, nodes: Iterable[NodeIdentity], version: int
) -> dict[str, Any]:
    """The signed list for ``nodes``."""
    public = key.public_key()
    body = {
        "kind": KIND,
        "v": VERSION,
        "version": version,
        "ts": now_ts(),
        "fleet_log_id": fleet_log_id,
        "dispatcher_key": key_id(public),
        "dispatcher_public_key": raw_public(public).hex(),
        "nodes": [
            {
                "name": n.name,
                "key_id": n.key_id,
                "public_key": n.public_key,
                "log_id": n.log_id,
                "runtimes": list(n.runtimes),
                "host": n.host,
            }
            for n in nodes
        ],
    }
    return sign_payload(key, body)


def node_list_digest(signed: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(signed)).hexdigest()


def read_node_list(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise NodeListError(f"cannot read the node list {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise NodeListError(f"the node list {path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise NodeListError(f"the node list {path} is not a JSON object")
    return data


def check_node_list(signed: dict[str, Any], trusted_dispatcher_key: str) -> list[str]:
    """Why ``signed`` is not a valid node list signed by the trusted key (empty when it is)."""
    if signed.get("kind") != KIND or signed.get("v") != VERSION:
        return [f"not a node list (kind {signed.get('kind')!r}, v {signed.get('v')!r})"]
    pub_hex = signed.get("dispatcher_public_key")
    try:
        public = public_from_hex(pub_hex if isinstance(pub_hex, str) else "")
    except AuditKeyError as exc:
        return [f"dispatcher_public_key: {exc}"]
    if key_id(public) != trusted_dispatcher_key:
        return [
            f"signed by {key_id(public)[:24]}…, not the trusted dispatcher key "
            f"{trusted_dispatcher_key[:24]}…"
        ]
    why = check_signature(public, signed)
    if why is not None:
        return [f"signature: {why}"]
    errors = []
    nodes = signed.get("nodes")
    if not isinstance(nodes, list):
        return ["'nodes' is not a list"]
    seen: set[str] = set()
    for i, node in enumerate(nodes):
        if not isinstance(node, dict) or not all(
            isinstance(node.get(k), str) for k in ("name", "key_id", "public_key", "log_id")
        ):
            errors.append(f"node #{i} lacks name, key_id, public_key or log_id")
            continue
        if node["name"] in seen:
            errors.append(f"node {node['name']!r} is listed twice")
        seen.add(node["name"])
        try:
            if key_id(public_from_hex(node["public_key"])) != node["key_id"]:
                errors.append(f"node {node['name']!r}: key_id is not its public key's fingerprint")
        except AuditKeyError as exc:
            errors.append(f"node {node['name']!r}: {exc}")
    return errors
