"""The values the AST pass reasons about: constants, qualified references and sequences."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

MAX_ALTS = 8  # candidate values kept per expression
MAX_DEPTH = 24  # resolution recursion bound
MAX_SEQ = 20_000  # elements evaluated in a comprehension or literal
MAX_DECODED = 1 << 20  # bytes a decoder may produce
MAX_PAYLOAD_DEPTH = 3  # nesting of decoded payloads analyzed recursively
HUGE = 1 << 256  # integers above this are not folded, only flagged

Kind = Literal["str", "bytes", "int", "ref", "seq", "caller", "getter", "code"]


@dataclass(frozen=True)
class Val:
    """A statically known value: a constant, a reference to a qualified name, or a sequence."""

    kind: Kind
    value: object
    obf: bool = False  # produced by folding, computed lookups or reflection
    decoded: bool = False  # produced by a decoder (base64, zlib, hex, rot13, chr, reversal)


def as_str(v: Val) -> str | None:
    if v.kind == "str" and isinstance(v.value, str):
        return v.value
    return None


def as_ref(v: Val) -> str | None:
    if v.kind == "ref" and isinstance(v.value, str):
        return v.value
    return None


def combos(args: list[list[Val]]) -> Iterator[list[Val]]:
    """First-candidate combinations of resolved arguments (bounded)."""
    if not args:
        return
    heads = args[0][:4]
    rest = [a[0] for a in args[1:] if a]
    if len(rest) != len(args) - 1:
        rest = rest[:0]
    for h in heads:
        yield [h, *rest]


def as_seq(v: Val) -> tuple[Val, ...] | None:
    if v.kind == "seq" and isinstance(v.value, tuple):
        return v.value
    if v.kind == "bytes" and isinstance(v.value, bytes):
        return tuple(Val("int", i) for i in v.value)
    if v.kind == "str" and isinstance(v.value, str):
        return tuple(Val("str", ch) for ch in v.value)
    return None


def as_ints(v: Val) -> list[int] | None:
    seq = as_seq(v)
    if seq is None:
        return None
    out = []
    for x in seq:
        if x.kind != "int" or not isinstance(x.value, int) or not 0 <= x.value < 256 ** 4:
            return None
        out.append(x.value)
    return out



def dedupe(vals: list[Val]) -> list[Val]:
    seen: set[tuple[str, object, bool, bool]] = set()
    out = []
    for v in vals:
        try:
            k = (v.kind, v.value, v.obf, v.decoded)
            hash(k)
        except TypeError:
            out.append(v)
            continue
        if k not in seen:
            seen.add(k)
            out.append(v)
    return out


def is_true(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and bool(node.value) and node.value is not None
