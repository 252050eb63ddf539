"""The ASGI gate in front of every protected route: token, body size, JSON depth.

It runs before the application reads anything: a missing or bad token is refused (401) before
the body is read, a declared ``Content-Length`` over the token's quota is refused (413) without
reading a byte of the body, and a chunked body is cut off (413) as soon as it passes the quota.
The body is then checked for nesting depth (422) before any JSON parser sees it, and replayed to
the application. The caller's identity comes from the token alone: no header can set or change it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import operator
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cellblock.service.interface import AuthenticationError, Identity, TokenStore, TokenStoreError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_JSON_DEPTH = 32
HARD_BODY_CAP = 64 * 1024 * 1024  # whatever a token says
_THREAD_ABOVE = 64 * 1024


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


async def send_error(
    send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # unrolled: linear and fast
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKET = re.compile(rb"[^\[\]]")
_STEPS = bytes.maketrans(b"[]", b"\x02\x00")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """True when arrays/objects nest deeper than ``limit`` (brackets inside strings do not count).

    C-speed loops only (it may run on the event loop): cut the strings out, keep the brackets,
    map ``[`` to 2 and ``]`` to 0, and the running sum minus the position is the depth.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # cannot nest deeper than the brackets it has
    structure = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", body).translate(_BRACKETS))
    steps = structure.translate(_STEPS)
    depths = map(operator.sub, itertools.accumulate(steps), range(1, len(steps) + 1))
    return max(depths, default=0) > limit


class TokenGate:
    """Wraps an ASGI app; paths starting with one of ``protected`` need a bearer token."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: TokenStore,
        via: str,
        protected: tuple[str, ...],
        on_refusal: Callable[[int], None] | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self.via = via
        self.protected = protected
        self.on_refusal = on_refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(self.protected):
            await self.app(scope, receive, send)
            return
        try:
            identity = self._identify(scope)
            replay = await self._read_body(scope, receive, identity)
        except _Refusal as refusal:
            if self.on_refusal is not None:
                self.on_refusal(refusal.status)
            await send_error(send, refusal.status, refusal.code, refusal.message, refusal.headers)
            return
        scope.setdefault("state", {})["identity"] = identity
        await self.app(scope, replay, send)

    def _identify(self, scope: Scope) -> Identity:
        values = [v for k, v in scope.get("headers", []) if k.lower() == b"authorization"]
        challenge = {"WWW-Authenticate": 'Bearer realm="cellblock"'}
        if not values:
            raise _Refusal(
                401,
                "unauthenticated",
                "this endpoint needs 'Authorization: Bearer <token>' "
                "(create one with `cellblock token create`)",
                challenge,
            )
        if len(values) > 1:
            raise _Refusal(
                401, "unauthenticated", "send exactly one Authorization header", challenge
            )
        scheme, _, secret = values[0].decode("latin-1").strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise _Refusal(
                401,
                "unauthenticated",
                "the Authorization header must be 'Bearer <token>'",
                challenge,
            )
        try:
            info = self.store.authenticate(secret.strip())
        except AuthenticationError as exc:
            raise _Refusal(401, "unauthenticated", str(exc), challenge) from None
        except TokenStoreError as exc:
            raise _Refusal(503, "token_store_unavailable", str(exc)) from None
        return Identity(
            subject=f"token:{info.token_id}",
            via=self.via,
            policy=info.policy,
            quotas=info.quotas,
            token_id=info.token_id,
            name=info.name,
        )

    async def _read_body(self, scope: Scope, receive: Receive, identity: Identity) -> Receive:
        limit = min(identity.quotas.max_request_bytes, HARD_BODY_CAP)
        too_large = _Refusal(
            413,
            "body_too_large",
            f"the request body is larger than this token's limit of {limit} bytes "
            "(quota max_request_bytes)",
        )
        for key, value in scope.get("headers", []):
            if key.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise _Refusal(400, "bad_request", "Content-Length is not a number") from None
                if declared > limit:
                    raise too_large  # refused before reading the body
        if scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS"):
            return receive
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refusal(400, "bad_request", "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        if len(body) > _THREAD_ABOVE:
            # a large body is checked off the event loop: other requests are not held up
            too_deep = await asyncio.to_thread(json_depth_exceeds, body, MAX_JSON_DEPTH)
        else:
            too_deep = json_depth_exceeds(body, MAX_JSON_DEPTH)
        if too_deep:
            raise _Refusal(
                422,
                "invalid_input",
                f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels; flatten it",
            )
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        return replay
