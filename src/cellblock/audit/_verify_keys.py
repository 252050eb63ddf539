"""Verifier checks on the key chain: the genesis key and announced key rotations."""

from __future__ import annotations

from typing import Any

from cellblock.audit._errors import AuditKeyError
from cellblock.audit._keys import check_signature, key_id, public_from_hex
from cellblock.audit._verify_base import K, _Base


class _KeyChain(_Base):
    def _adopt_key(self, k: dict[str, Any], where: str) -> None:
        try:
            pub = public_from_hex(str(k["pub"]))
        except (AuditKeyError, KeyError) as exc:
            self.problem(K.UNKNOWN_KEY, f"genesis key unusable: {exc}", where, 0, 0)
            return
        if key_id(pub) != k.get("id"):
            self.problem(K.UNKNOWN_KEY, "genesis key id does not match its public key", where, 0, 0)
        if self.s.key is not None and self.s.key != key_id(pub):
            self.problem(
                K.UNKNOWN_KEY, "genesis key differs from the manifest's start key", where, 0, 0
            )
        self.s.key, self.s.pub = key_id(pub), pub
        if key_id(pub) not in self.s.chain_keys:
            self.s.chain_keys.append(key_id(pub))
        self.s.pubs[key_id(pub)] = pub

    def _key_event(self, ev: dict[str, Any], where: str, seq: int | None, offset: int = 0) -> None:
        """A key rotation: the next key is valid only if announced under the current key."""
        s = self.s
        if s.pub is None or ev.get("key") != s.key:
            self.problem(
                K.UNKNOWN_KEY, "key rotation not signed by the current key", where, offset, seq
            )
            return
        why = check_signature(s.pub, ev)
        if why:
            self.problem(K.BAD_SIGNATURE, f"key rotation: {why}", where, offset, seq)
            return
        s.signers.add(str(s.key))
        nk = ev["next_key"]
        try:
            pub = public_from_hex(str(nk["pub"]))
        except (AuditKeyError, KeyError, TypeError) as exc:
            self.problem(K.UNKNOWN_KEY, f"announced key unusable: {exc}", where, offset, seq)
            return
        if key_id(pub) != nk.get("id"):
            self.problem(
                K.UNKNOWN_KEY, "announced key id does not match its key", where, offset, seq
            )
            return
        s.key, s.pub = key_id(pub), pub
        s.chain_keys.append(s.key)
        s.pubs[s.key] = pub
