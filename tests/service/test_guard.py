"""The JSON depth check runs before any parser, skips strings, and is linear."""

from __future__ import annotations

import json

import pytest

from cellblock.service._guard import json_depth_exceeds


@pytest.mark.parametrize(
    ("body", "limit", "too_deep"),
    [
        (b"[]" * 5, 1, False),
        (b"[" * 32 + b"]" * 32, 32, False),
        (b"[" * 33 + b"]" * 33, 32, True),
        (b"[[]]" * 100, 2, False),
        (b"[[[]]]", 2, True),
        (b'{"a":' * 40 + b"1" + b"}" * 40, 32, True),
        (b'{"a":' * 30 + b"1" + b"}" * 30, 32, False),
        (json.dumps({"code": "[" * 1000 + "{" * 1000}).encode(), 32, False),
        (json.dumps({"code": '"[[[\\' + "[" * 100}).encode(), 32, False),  # escapes in strings
        (b'{"code": "\\"' + b"[" * 100 + b'"}', 32, False),
        (b"[" * 100, 32, True),  # unbalanced and deep: refused before the parser
    ],
)
def test_depth(body: bytes, limit: int, too_deep: bool) -> None:
    assert json_depth_exceeds(body, limit) is too_deep


def test_huge_bodies_are_checked_without_recursion() -> None:
    assert json_depth_exceeds(b"[" * 1_000_000 + b"]" * 1_000_000, 32)
    assert not json_depth_exceeds(json.dumps({"code": "x = [1, {2: 3}]\n" * 60_000}).encode(), 32)
