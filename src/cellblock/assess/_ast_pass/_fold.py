"""Constant folding: integer arithmetic, pure ``str``/``bytes`` methods and the standard decoders
(base64, hex, zlib, codecs, ...) evaluated on constants, bounded in output size."""

from __future__ import annotations

import ast
import base64
import binascii
import bz2
import codecs
import lzma
import math
import re
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cellblock.assess._ast_pass._values import (
    HUGE,
    MAX_DECODED,
    MAX_FOLDED,
    MAX_SEQ,
    Val,
    as_seq,
    as_str,
    seq_volume,
    sized_len,
)

if TYPE_CHECKING:
    from cellblock.assess._ast_pass._resolve import Resolver

DECODERS = frozenset({
    "base64.b64decode", "base64.standard_b64decode", "base64.urlsafe_b64decode",
    "base64.b32decode", "base64.b16decode", "base64.a85decode", "base64.b85decode",
    "base64.decodebytes", "base64.decodestring", "binascii.a2b_base64", "binascii.unhexlify",
    "binascii.a2b_hex", "binascii.a2b_uu", "zlib.decompress", "gzip.decompress",
    "bz2.decompress", "lzma.decompress", "codecs.decode", "codecs.encode",
    "builtins.bytes.fromhex", "builtins.bytearray.fromhex", "builtins.chr",
    "marshal.loads", "builtins.str.maketrans", "builtins.reversed",
})


# one scan each, in C: a directive other than a bare conversion, or a field other than {}, {0}
# or {name} (no attribute, item, conversion or spec)
_UNPLAIN_PERCENT = re.compile(r"%(?:[^sdixXoc%]|$)")
# (a field inside a field, '{:{}}', is a width: with '}}' removed it shows as '{' before '}')
_UNPLAIN_FIELD = re.compile(r"\{[^{}]*[^{}\w][^{}]*\}|\{[^}]*\{")
# codecs folded by name: linear, and what obfuscation uses (punycode encodes in quadratic time)
_PLAIN_CODECS = frozenset({
    "utf-8", "ascii", "iso8859-1", "cp1252", "utf-16", "utf-16-le", "utf-16-be", "utf-32",
    "utf-32-le", "utf-32-be", "unicode-escape", "raw-unicode-escape",
})


def plain_codec(name: str) -> bool:
    try:
        return codecs.lookup(name).name in _PLAIN_CODECS
    except (LookupError, ValueError, TypeError):
        return False


def formatted_size(
    res: Resolver, fmt: str, values: Sequence[object], percent: bool
) -> int | None:
    """An upper bound on the length of ``fmt % values`` or ``fmt.format(*values)``, or None
    when the result is not folded: widths, precisions, attributes, items and ``repr``
    conversions (``%999999999s``, ``{:>999999999}``, ``{0.__dict__}``, ``%r``) are never
    evaluated, nor results longer than ``MAX_FOLDED``."""
    res.budget.materialize(len(fmt))  # the scan below is paid for, whatever it finds
    sizes = []
    for v in values:
        if isinstance(v, str):
            sizes.append(len(v))
        elif isinstance(v, bytes):
            sizes.append(4 * len(v) + 3)  # its repr
        elif isinstance(v, int) and abs(v) <= HUGE:
            sizes.append(len(str(v)))
        else:
            return None
    if percent:
        if _UNPLAIN_PERCENT.search(fmt.replace("%%", "")):
            return None
        size = len(fmt) + sum(sizes)
    else:
        bare = fmt.replace("{{", "").replace("}}", "")
        if _UNPLAIN_FIELD.search(bare):
            return None
        size = len(fmt) + bare.count("{") * max(sizes, default=0)
    return size if size <= MAX_FOLDED else None


def fold_int(op: ast.operator, a: int, c: int) -> int | None:
    try:
        if isinstance(op, ast.Add):
            r = a + c
        elif isinstance(op, ast.Sub):
            r = a - c
        elif isinstance(op, ast.Mult):
            r = a * c
        elif isinstance(op, ast.Pow):
            if c < 0:
                return None
            if abs(a) > 1 and c * math.log2(abs(a)) > 256:
                return HUGE
            r = a**c
        elif isinstance(op, ast.LShift):
            r = HUGE if c > 256 else a << c
        elif isinstance(op, ast.RShift):
            r = a >> min(c, 1024)
        elif isinstance(op, ast.BitXor):
            r = a ^ c
        elif isinstance(op, ast.BitAnd):
            r = a & c
        elif isinstance(op, ast.BitOr):
            r = a | c
        elif isinstance(op, ast.FloorDiv):
            r = a // c
        elif isinstance(op, ast.Mod):
            r = a % c
        else:
            return None
    except (ZeroDivisionError, ValueError, OverflowError):
        return None
    return HUGE if abs(r) > HUGE else r


# decoders written in Python (seconds per megabyte): only short inputs are decoded
_SLOW_DECODERS = frozenset({"base64.b32decode", "base64.a85decode", "base64.b85decode"})
MAX_SLOW_DECODE = 64 << 10


def decode_call(qual: str, args: Sequence[Val]) -> Val | None:
    """Evaluate a standard decoder on constant arguments, bounded in output size."""
    if not args:
        return None
    if qual in _SLOW_DECODERS and isinstance(args[0].value, str | bytes) and len(
            args[0].value) > MAX_SLOW_DECODE:
        return None
    a0 = args[0]
    data: bytes | str | None = a0.value if a0.kind in ("str", "bytes") else None  # type: ignore[assignment]
    if data is None:
        return None
    raw = data.encode("latin-1", "replace") if isinstance(data, str) else data
    try:
        out: bytes | str
        if qual in ("builtins.bytes.fromhex", "builtins.bytearray.fromhex"):
            out = bytes.fromhex(data if isinstance(data, str) else data.decode())
        elif qual in ("binascii.unhexlify", "binascii.a2b_hex", "base64.b16decode"):
            out = binascii.unhexlify(raw)
        elif qual in ("base64.b64decode", "base64.standard_b64decode", "base64.decodebytes",
                      "base64.decodestring", "binascii.a2b_base64"):
            out = base64.b64decode(raw)
        elif qual == "base64.urlsafe_b64decode":
            out = base64.urlsafe_b64decode(raw)
        elif qual == "base64.b32decode":
            out = base64.b32decode(raw)
        elif qual == "base64.a85decode":
            out = base64.a85decode(raw)
        elif qual == "base64.b85decode":
            out = base64.b85decode(raw)
        elif qual in ("zlib.decompress", "gzip.decompress"):
            d = zlib.decompressobj(47 if qual == "gzip.decompress" else 15 + 32)
            out = d.decompress(raw, MAX_DECODED)
        elif qual == "bz2.decompress":
            out = bz2.BZ2Decompressor().decompress(raw, MAX_DECODED)
        elif qual == "lzma.decompress":
            out = lzma.LZMADecompressor().decompress(raw, MAX_DECODED)
        elif qual in ("codecs.decode", "codecs.encode"):
            enc = as_str(args[1]) if len(args) > 1 else "utf-8"
            if enc is None:
                return None
            enc_n = enc.lower().replace("-", "_")
            if enc_n in ("rot13", "rot_13"):
                out = codecs.decode(data if isinstance(data, str) else data.decode(), "rot13")
            elif enc_n in ("hex", "hex_codec", "base64", "base_64", "base64_codec",
                           "zlib", "zlib_codec", "bz2", "bz2_codec", "uu", "uu_codec"):
                out = codecs.decode(raw, enc_n)
            elif qual == "codecs.decode" and isinstance(data, bytes) and plain_codec(enc):
                out = data.decode(enc)
            else:
                return None
        else:
            return None
    except (ValueError, TypeError, LookupError, zlib.error, OSError, EOFError, lzma.LZMAError):
        return None
    if len(out) > MAX_DECODED:
        out = out[:MAX_DECODED]
    return Val("bytes" if isinstance(out, bytes) else "str", out, obf=True, decoded=True)


def const_method(
    res: Resolver, recv: Val, meth: str, node: ast.Call, env: dict[str, list[Val]], depth: int
) -> Val | None:
    """Evaluate a pure ``str``/``bytes`` method on a constant receiver."""
    if recv.kind not in ("str", "bytes") or not isinstance(recv.value, str | bytes):
        return None
    s = recv.value
    args = [res.resolve(a, env, depth) for a in node.args[:2]]
    a0 = args[0][0] if args and len(args[0]) == 1 else None
    try:
        if meth == "join" and a0 is not None:
            count = sized_len(a0)
            if count is None:
                return None
            if isinstance(a0.value, str) and isinstance(s, str):  # joining a string's characters
                if not res.budget.afford_string(count + len(s) * max(count - 1, 0)):
                    return None
                return Val("str", s.join(a0.value), obf=True, decoded=a0.decoded)
            if not isinstance(a0.value, tuple):
                return None  # joining ints (bytes, a range) is a TypeError
            seq = as_seq(a0)
            if seq is None:
                return None
            parts = [x.value for x in seq]
            size = sum(len(p) for p in parts if isinstance(p, str | bytes)) + len(s) * count
            if not res.budget.afford_string(size):
                return None
            if isinstance(s, str) and all(isinstance(p, str) for p in parts):
                return Val("str", s.join(parts), obf=True,  # type: ignore[arg-type]
                           decoded=a0.decoded or any(x.decoded for x in seq))
            if isinstance(s, bytes) and all(isinstance(p, bytes) for p in parts):
                return Val("bytes", s.join(parts), obf=True, decoded=a0.decoded)  # type: ignore[arg-type]
            return None
        if meth in ("lower", "upper", "strip", "lstrip", "rstrip", "title", "capitalize",
                    "swapcase", "casefold") and not node.args:
            res.budget.materialize(len(s))
            changed = getattr(s, meth)()
            return None if len(changed) > MAX_FOLDED else Val(
                recv.kind, changed, obf=True, decoded=recv.decoded)
        if meth == "replace" and len(args) == 2 and a0 is not None and len(args[1]) == 1:
            a1 = args[1][0]
            if type(a0.value) is type(s) and type(a1.value) is type(s):
                assert isinstance(a0.value, str | bytes) and isinstance(a1.value, str | bytes)
                grows = max(0, len(a1.value) - len(a0.value))
                if not res.budget.afford_string(
                        len(s) + s.count(a0.value) * grows):  # type: ignore[arg-type]
                    return None
                return Val(recv.kind, s.replace(a0.value, a1.value), obf=True,  # type: ignore[arg-type]
                           decoded=recv.decoded)
        if meth == "decode" and isinstance(s, bytes):
            enc = as_str(a0) if a0 is not None else "utf-8"
            if enc is None:
                return None
            res.budget.materialize(len(s))
            if enc.lower().replace("-", "_") in ("hex", "base64", "rot13", "zlib"):
                d = decode_call("codecs.decode", [recv, Val("str", enc)])
                if d is not None:
                    res.budget.materialize(len(d.value))  # type: ignore[arg-type]
                return d
            if not plain_codec(enc):
                return None
            return Val("str", s.decode(enc, "replace"), obf=recv.obf, decoded=recv.decoded)
        if meth == "encode" and isinstance(s, str):
            enc = as_str(a0) if a0 is not None else "utf-8"
            if enc is None:
                return None
            res.budget.materialize(len(s))
            if enc.lower().replace("-", "_") in ("rot13", "rot_13"):
                return Val("str", codecs.decode(s, "rot13"), obf=True, decoded=True)
            if not plain_codec(enc):
                return None
            return Val("bytes", s.encode(enc, "replace"), obf=recv.obf, decoded=recv.decoded)
        if meth == "format" and isinstance(s, str):
            vals = []
            for a in node.args:
                av = res.resolve(a, env, depth)
                if len(av) != 1 or av[0].kind not in ("str", "int"):
                    return None
                vals.append(av[0].value)
            bound = formatted_size(res, s, vals, percent=False)
            if bound is None:
                return None
            res.budget.materialize(bound)
            formatted = s.format(*vals)
            if len(formatted) > bound:  # the bound is wrong somewhere: keep nothing from it
                return None
            return Val("str", formatted, obf=True, decoded=recv.decoded)
        if meth == "translate" and isinstance(s, str) and a0 is not None:
            return None
        if meth == "split" and isinstance(s, str):
            sep = as_str(a0) if a0 is not None else None
            res.budget.materialize(len(s))  # counting is paid for, whatever it finds
            count = s.count(sep) + 1 if sep else len(s) // 2 + 1
            if count > MAX_SEQ:
                return None
            res.budget.materialize(seq_volume(count))
            return Val("seq", tuple(Val("str", p) for p in s.split(sep)), obf=True)
    except (LookupError, ValueError, TypeError, IndexError, KeyError):
        return None
    return None
