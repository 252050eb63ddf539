"""Our own AST capability pass: the analyzer that sees through LLM-style obfuscation.

Bandit and Semgrep match syntax. Code that wants to hide writes ``__import__('o'+'s')``,
``getattr(builtins, 'ev'+'al')`` or ``exec(base64.b64decode(...))``. This pass resolves names to
fully qualified references (import aliases, assignments, ``getattr``, ``sys.modules``,
``importlib``, ``operator.methodcaller``), folds constant strings (concatenation, f-strings,
``chr`` joins, slicing, ``str`` methods) and evaluates the standard decoders (base64, zlib,
codecs, hex) on constants, then looks the result up in the capability table. A decoded payload
that is Python is analyzed recursively.

The resolution is deliberately flow-insensitive: every binding of a name anywhere in the code
is a candidate value, so reassigning a name cannot hide what it once held.
"""

from __future__ import annotations

import ast
import base64
import binascii
import builtins
import bz2
import codecs
import contextlib
import lzma
import math
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from cellblock.assess import _capabilities as caps
from cellblock.assess._interface import (
    Analyzer,
    AnalyzerResult,
    Confidence,
    Finding,
    Level,
    Source,
)

VERSION = "1.0"
TOOL = "ast"

_MAX_ALTS = 8  # candidate values kept per expression
_MAX_DEPTH = 24  # resolution recursion bound
_MAX_SEQ = 20_000  # elements evaluated in a comprehension or literal
_MAX_DECODED = 1 << 20  # bytes a decoder may produce
_MAX_PAYLOAD_DEPTH = 3  # nesting of decoded payloads analyzed recursively
_HUGE = 1 << 256  # integers above this are not folded, only flagged
_BIG_ALLOC = 10**8  # elements or bytes above which an allocation is a bomb
_BIG_LOOP = 10_000
_TMP_DIRS = ("/tmp", "/var/tmp")  # noqa: S108 - these are paths we compare with, not use

Kind = Literal["str", "bytes", "int", "ref", "seq", "caller", "getter", "code"]


@dataclass(frozen=True)
class Val:
    """A statically known value: a constant, a reference to a qualified name, or a sequence."""

    kind: Kind
    value: object
    obf: bool = False  # produced by folding, computed lookups or reflection
    decoded: bool = False  # produced by a decoder (base64, zlib, hex, rot13, chr, reversal)


def _str(v: Val) -> str | None:
    if v.kind == "str" and isinstance(v.value, str):
        return v.value
    return None


def _ref(v: Val) -> str | None:
    if v.kind == "ref" and isinstance(v.value, str):
        return v.value
    return None


_BUILTIN_NAMES = frozenset(dir(builtins))

_DECODERS = frozenset({
    "base64.b64decode", "base64.standard_b64decode", "base64.urlsafe_b64decode",
    "base64.b32decode", "base64.b16decode", "base64.a85decode", "base64.b85decode",
    "base64.decodebytes", "base64.decodestring", "binascii.a2b_base64", "binascii.unhexlify",
    "binascii.a2b_hex", "binascii.a2b_uu", "zlib.decompress", "gzip.decompress",
    "bz2.decompress", "lzma.decompress", "codecs.decode", "codecs.encode",
    "builtins.bytes.fromhex", "builtins.bytearray.fromhex", "builtins.chr",
    "marshal.loads", "builtins.str.maketrans", "builtins.reversed",
})

_FORK_FUNCS = frozenset({"os.fork", "os.forkpty", "pty.fork", "posix.fork"})
_SPAWN_IN_LOOP = frozenset({
    "threading.Thread", "multiprocessing.Process", "subprocess.Popen", "subprocess.run",
    "subprocess.call", "os.system", "os.popen", "_thread.start_new_thread",
    "_thread.start_new", "threading.Timer", "asyncio.create_task",
})
_SENSITIVE_PATH = re.compile(
    r"^(/etc/(passwd|shadow|sudoers|crontab|cron\.|ssh/|hosts|ld\.so\.preload)|/root\b|"
    r"/proc/(self|\d+|1)/(environ|mem|maps|root|cwd|fd|cmdline|exe)|/proc/sys|/proc/sysrq|"
    r"/proc/kcore|/sys/(fs/cgroup|kernel)|/dev/(mem|kmem|port|sd[a-z]|nvme|xvd)|"
    r"/var/run/docker\.sock|/run/docker\.sock|/run/containerd|/var/spool/cron|/boot/)"
    r"|(^|/)\.ssh(/|$)|id_rsa|id_ed25519|authorized_keys|\.aws/credentials|\.docker/config"
    r"|\.kube/config|\.bash_history|(^|/)\.bashrc$|(^|/)\.profile$|\.netrc$|\.pgpass$"
)
_ESCAPE_PATH = re.compile(
    r"(sitecustomize|usercustomize)(\.py)?$|\.pth$|site-packages|dist-packages|"
    r"/proc/(self|\d+)/mem|/proc/1/root|release_agent|notify_on_release|core_pattern|"
    r"docker\.sock|/dev/(mem|kmem)|/sys/fs/cgroup|ld\.so\.preload"
)
_SECRET_ENV = re.compile(r"(TOKEN|SECRET|PASSW|API_?KEY|PRIVATE|CREDENTIAL|AWS_|SESSION)", re.I)
_DANGEROUS_ENV = frozenset({"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PYTHONPATH",
                            "PYTHONSTARTUP", "PYTHONHOME", "PYTHONINSPECT", "PATH",
                            "BASH_ENV", "ENV", "PYTHONUSERBASE"})
_KILL_SIGNALS = frozenset({"SIGTERM", "SIGINT", "SIGXCPU", "SIGALRM", "SIGHUP", "SIGQUIT",
                           "SIGVTALRM", "SIGPROF", "SIGCHLD", "SIGXFSZ"})


@dataclass
class _Bindings:
    """Flow-insensitive symbol table of one module."""

    values: dict[str, list[ast.expr]] = field(default_factory=dict)
    imports: dict[str, list[str]] = field(default_factory=dict)
    functions: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda]] = field(
        default_factory=dict
    )
    opaque: set[str] = field(default_factory=set)  # bound in ways we do not evaluate
    star_modules: list[str] = field(default_factory=list)
    imported_modules: list[tuple[str, int]] = field(default_factory=list)

    def add_value(self, name: str, value: ast.expr) -> None:
        lst = self.values.setdefault(name, [])
        if len(lst) < 16:
            lst.append(value)


def _bind_target(b: _Bindings, target: ast.expr, value: ast.expr | None) -> None:
    if isinstance(target, ast.Name):
        if value is None:
            b.opaque.add(target.id)
        else:
            b.add_value(target.id, value)
    elif isinstance(target, ast.Tuple | ast.List):
        if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts):
            for t, v in zip(target.elts, value.elts, strict=True):
                _bind_target(b, t, v)
        else:
            for t in target.elts:
                _bind_target(b, t, None)
    elif isinstance(target, ast.Starred):
        _bind_target(b, target.value, None)


_LoopNode = ast.While | ast.For | ast.AsyncFor


def _flatten(tree: ast.AST) -> list[tuple[ast.AST, tuple[ast.AST, ...]]]:
    """Every node once, with the loops that enclose it within its function. One walk shared by
    every check: walking the tree is most of the pass's cost."""
    out: list[tuple[ast.AST, tuple[ast.AST, ...]]] = []
    stack: list[tuple[ast.AST, tuple[ast.AST, ...]]] = [(tree, ())]
    while stack:
        node, loops = stack.pop()
        out.append((node, loops))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            inner: tuple[ast.AST, ...] = ()  # a loop around a definition does not repeat it
        elif isinstance(node, _LoopNode):
            inner = (*loops, node)
        else:
            inner = loops
        for child in ast.iter_child_nodes(node):
            stack.append((child, inner))
    return out


def _collect(nodes: list[tuple[ast.AST, tuple[ast.AST, ...]]]) -> _Bindings:
    b = _Bindings()
    for node, _ in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                b.imported_modules.append((alias.name, node.lineno))
                if alias.asname:
                    b.imports.setdefault(alias.asname, []).append(alias.name)
                else:
                    top = alias.name.split(".")[0]
                    b.imports.setdefault(top, []).append(top)
        elif isinstance(node, ast.ImportFrom):
            if node.level or not node.module:
                continue  # relative imports are the user's own modules
            b.imported_modules.append((node.module, node.lineno))
            for alias in node.names:
                if alias.name == "*":
                    b.star_modules.append(node.module)
                    continue
                b.imports.setdefault(alias.asname or alias.name, []).append(
                    f"{node.module}.{alias.name}"
                )
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                _bind_target(b, t, node.value)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            if isinstance(node, ast.AnnAssign) and node.value is not None:
                _bind_target(b, node.target, node.value)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                # s += 'x' is folded as s + 'x' over the other bindings of s
                b.add_value(node.target.id, ast.BinOp(
                    left=ast.Name(id=node.target.id, ctx=ast.Load()), op=node.op,
                    right=node.value))
        elif isinstance(node, ast.NamedExpr):
            _bind_target(b, node.target, node.value)
        elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
            _bind_target(b, node.target, None)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            _bind_target(b, node.optional_vars, None)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            b.functions.setdefault(node.name, []).append(node)
            for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs):
                b.opaque.add(a.arg)
        elif isinstance(node, ast.ClassDef | ast.ExceptHandler) and node.name:
            b.opaque.add(node.name)
    return b


def _fold_int(op: ast.operator, a: int, c: int) -> int | None:
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
                return _HUGE
            r = a**c
        elif isinstance(op, ast.LShift):
            r = _HUGE if c > 256 else a << c
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
    return _HUGE if abs(r) > _HUGE else r


def _decode_call(qual: str, args: Sequence[Val]) -> Val | None:
    """Evaluate a standard decoder on constant arguments, bounded in output size."""
    if not args:
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
            out = d.decompress(raw, _MAX_DECODED)
        elif qual == "bz2.decompress":
            out = bz2.BZ2Decompressor().decompress(raw, _MAX_DECODED)
        elif qual == "lzma.decompress":
            out = lzma.LZMADecompressor().decompress(raw, _MAX_DECODED)
        elif qual in ("codecs.decode", "codecs.encode"):
            enc = _str(args[1]) if len(args) > 1 else "utf-8"
            if enc is None:
                return None
            enc_n = enc.lower().replace("-", "_")
            if enc_n in ("rot13", "rot_13"):
                out = codecs.decode(data if isinstance(data, str) else data.decode(), "rot13")
            elif enc_n in ("hex", "hex_codec", "base64", "base_64", "base64_codec",
                           "zlib", "zlib_codec", "bz2", "bz2_codec", "uu", "uu_codec"):
                out = codecs.decode(raw, enc_n)
            elif qual == "codecs.decode" and isinstance(data, bytes):
                out = data.decode(enc)
            else:
                return None
        else:
            return None
    except (ValueError, TypeError, LookupError, zlib.error, OSError, EOFError, lzma.LZMAError):
        return None
    if len(out) > _MAX_DECODED:
        out = out[:_MAX_DECODED]
    return Val("bytes" if isinstance(out, bytes) else "str", out, obf=True, decoded=True)


class _Resolver:
    """Resolves expressions to candidate :class:`Val` values."""

    def __init__(self, bindings: _Bindings) -> None:
        self.b = bindings
        self._memo: dict[int, list[Val]] = {}
        self._active: set[int] = set()

    def resolve(
        self, node: ast.AST | None, env: dict[str, list[Val]] | None = None, depth: int = 0
    ) -> list[Val]:
        if node is None or depth > _MAX_DEPTH:
            return []
        key = id(node)
        if not env and key in self._memo:
            return self._memo[key]
        if key in self._active:  # a cycle through bindings: give up on this branch
            return []
        self._active.add(key)
        try:
            out = self._resolve(node, env or {}, depth + 1)
        finally:
            self._active.discard(key)
        out = _dedupe(out)[:_MAX_ALTS]
        if not env:
            self._memo[key] = out
        return out

    def resolve_name(self, name: str, env: dict[str, list[Val]], depth: int) -> list[Val]:
        if name in env:
            return env[name]
        out: list[Val] = []
        for q in self.b.imports.get(name, ()):
            out.append(Val("ref", q))
        for v in self.b.values.get(name, ()):
            out.extend(self.resolve(v, env, depth))
        if name in self.b.functions:
            out.append(Val("ref", f"<local>.{name}"))
        if not out and name not in self.b.opaque:
            if name in ("__builtins__", "__builtin__"):
                out.append(Val("ref", "builtins", obf=True))
            elif name in _BUILTIN_NAMES:
                out.append(Val("ref", f"builtins.{name}"))
            else:
                for mod in self.b.star_modules:
                    if caps.lookup(f"{mod}.{name}") is not None:
                        out.append(Val("ref", f"{mod}.{name}"))
        return out

    def _resolve(self, node: ast.AST, env: dict[str, list[Val]], depth: int) -> list[Val]:
        r = self.resolve
        if isinstance(node, ast.Constant):
            cv = node.value
            if isinstance(cv, bool) or cv is None:
                return []
            if isinstance(cv, str):
                return [Val("str", cv)]
            if isinstance(cv, bytes):
                return [Val("bytes", cv)]
            if isinstance(cv, int):
                return [Val("int", cv)]
            return []
        if isinstance(node, ast.Name):
            return self.resolve_name(node.id, env, depth)
        if isinstance(node, ast.NamedExpr):
            return r(node.value, env, depth)
        if isinstance(node, ast.Attribute):
            out = []
            for base in r(node.value, env, depth):
                q = _ref(base)
                if q is not None:
                    if node.attr == "__dict__":
                        out.append(Val("ref", q, obf=True))
                    elif node.attr == "__builtins__":
                        out.append(Val("ref", "builtins", obf=True))
                    else:
                        out.append(Val("ref", f"{q}.{node.attr}", obf=base.obf))
            return out
        if isinstance(node, ast.Subscript):
            return self._subscript(node, env, depth)
        if isinstance(node, ast.BinOp):
            return self._binop(node, env, depth)
        if isinstance(node, ast.JoinedStr):
            parts: list[str] = []
            for p in node.values:
                if isinstance(p, ast.Constant) and isinstance(p.value, str):
                    parts.append(p.value)
                elif isinstance(p, ast.FormattedValue):
                    vals = r(p.value, env, depth)
                    s = _str(vals[0]) if len(vals) == 1 else None
                    if s is None:
                        iv = vals[0].value if len(vals) == 1 and vals[0].kind == "int" else None
                        if not isinstance(iv, int):
                            return []
                        s = str(iv)
                    parts.append(s)
                else:
                    return []
            return [Val("str", "".join(parts), obf=len(node.values) > 1)]
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            if len(node.elts) > _MAX_SEQ:
                return []
            items: list[Val] = []
            for e in node.elts:
                vals = r(e, env, depth)
                if len(vals) != 1:
                    return [Val("seq", ())] if not items and not node.elts else []
                items.append(vals[0])
            return [Val("seq", tuple(items))]
        if isinstance(node, ast.ListComp | ast.GeneratorExp | ast.SetComp):
            return self._comprehension(node, env, depth)
        if isinstance(node, ast.Call):
            return self._call(node, env, depth)
        if isinstance(node, ast.UnaryOp):
            out = []
            for v in r(node.operand, env, depth):
                if v.kind == "int" and isinstance(v.value, int):
                    if isinstance(node.op, ast.USub):
                        out.append(Val("int", -v.value, obf=v.obf))
                    elif isinstance(node.op, ast.Invert):
                        out.append(Val("int", ~v.value, obf=v.obf))
                    elif isinstance(node.op, ast.UAdd):
                        out.append(v)
            return out
        if isinstance(node, ast.IfExp):
            return r(node.body, env, depth) + r(node.orelse, env, depth)
        if isinstance(node, ast.BoolOp):
            out = []
            for operand in node.values:
                out.extend(r(operand, env, depth))
            return out
        return []

    def _subscript(self, node: ast.Subscript, env: dict[str, list[Val]], depth: int) -> list[Val]:
        out: list[Val] = []
        bases = self.resolve(node.value, env, depth)
        sl = node.slice
        if isinstance(sl, ast.Slice):
            lo = self._int(sl.lower, env, depth)
            hi = self._int(sl.upper, env, depth)
            st = self._int(sl.step, env, depth)
            for b in bases:
                if b.kind in ("str", "bytes") and isinstance(b.value, str | bytes):
                    try:
                        sliced = b.value[lo:hi:st]
                    except ValueError:
                        continue
                    out.append(Val(b.kind, sliced, obf=True, decoded=b.decoded or st == -1))
            return out
        keys = self.resolve(sl, env, depth)
        for b in bases:
            q = _ref(b)
            for k in keys:
                ks = _str(k)
                if q is not None and ks is not None:
                    if q == "<globals>":
                        if ks in ("__builtins__", "__builtin__"):
                            out.append(Val("ref", "builtins", obf=True))
                        else:
                            out.extend(
                                Val("ref", x.value, obf=True) for x in
                                self.resolve_name(ks, {}, depth) if x.kind == "ref"
                            )
                    elif q == "sys.modules":
                        out.append(Val("ref", ks, obf=True))
                    else:
                        name = "builtins" if ks in ("__builtins__", "__builtin__") else None
                        out.append(Val("ref", name or f"{q}.{ks}", obf=True))
                elif b.kind == "seq" and k.kind == "int" and isinstance(b.value, tuple):
                    idx = k.value
                    if isinstance(idx, int) and -len(b.value) <= idx < len(b.value):
                        out.append(b.value[idx])
                elif b.kind in ("str", "bytes") and k.kind == "int" and isinstance(
                    b.value, str | bytes
                ) and isinstance(k.value, int) and -len(b.value) <= k.value < len(b.value):
                    item = b.value[k.value]
                    if isinstance(item, int):
                        out.append(Val("int", item))
                    else:
                        out.append(Val("str", item, obf=True))
        return out

    def _int(self, node: ast.expr | None, env: dict[str, list[Val]], depth: int) -> int | None:
        if node is None:
            return None
        vals = self.resolve(node, env, depth)
        if len(vals) == 1 and vals[0].kind == "int" and isinstance(vals[0].value, int):
            return vals[0].value
        return None

    def _binop(self, node: ast.BinOp, env: dict[str, list[Val]], depth: int) -> list[Val]:
        out: list[Val] = []
        lefts = self.resolve(node.left, env, depth)
        rights = self.resolve(node.right, env, depth)
        for a in lefts:
            for c in rights:
                obf = a.obf or c.obf
                dec = a.decoded or c.decoded
                if isinstance(node.op, ast.Add) and a.kind == c.kind and a.kind in (
                    "str", "bytes"
                ):
                    out.append(Val(a.kind, a.value + c.value, obf=True, decoded=dec))  # type: ignore[operator]
                elif a.kind == "int" and c.kind == "int":
                    assert isinstance(a.value, int) and isinstance(c.value, int)
                    iv = _fold_int(node.op, a.value, c.value)
                    if iv is not None:
                        out.append(Val("int", iv, obf=obf))
                elif isinstance(node.op, ast.Mod) and a.kind == "str":
                    args = c.value if c.kind == "seq" else (c,)
                    assert isinstance(args, tuple) and isinstance(a.value, str)
                    try:
                        formatted = a.value % tuple(x.value for x in args)
                    except (TypeError, ValueError, KeyError):
                        continue
                    out.append(Val("str", formatted, obf=True, decoded=dec))
                elif isinstance(node.op, ast.Mult) and {a.kind, c.kind} == {"str", "int"}:
                    s, n = (a, c) if a.kind == "str" else (c, a)
                    assert isinstance(s.value, str) and isinstance(n.value, int)
                    if len(s.value) * n.value <= 4096:
                        out.append(Val("str", s.value * n.value, obf=True))
        return out

    def _comprehension(
        self, node: ast.ListComp | ast.GeneratorExp | ast.SetComp,
        env: dict[str, list[Val]], depth: int,
    ) -> list[Val]:
        if len(node.generators) != 1:
            return []
        gen = node.generators[0]
        if not isinstance(gen.target, ast.Name):
            return []
        iters = self.resolve(gen.iter, env, depth)
        if len(iters) != 1:
            return []
        elems = _as_seq(iters[0])
        if elems is None or len(elems) > _MAX_SEQ:
            return []
        items: list[Val] = []
        for e in elems:
            local = dict(env)
            local[gen.target.id] = [e]
            if gen.ifs:
                ok = True
                for cond in gen.ifs:
                    cv = self.resolve(cond, local, depth)
                    if not cv:
                        ok = False
                if not ok:
                    return []
            vals = self.resolve(node.elt, local, depth)
            if len(vals) != 1:
                return []
            items.append(vals[0])
        return [Val("seq", tuple(items), obf=True,
                    decoded=any(i.decoded for i in items) or iters[0].decoded)]

    def _call(self, node: ast.Call, env: dict[str, list[Val]], depth: int) -> list[Val]:
        r = self.resolve
        out: list[Val] = []
        funcs = r(node.func, env, depth)
        # calling the result of methodcaller/attrgetter: f(obj)
        for f in funcs:
            if f.kind == "getter" and node.args:
                for base in r(node.args[0], env, depth):
                    q = _ref(base)
                    if q is not None:
                        out.append(Val("ref", f"{q}.{f.value}", obf=True))
        # methods on constants ("".join, .replace, .decode, ...)
        if isinstance(node.func, ast.Attribute):
            for recv in r(node.func.value, env, depth):
                m = _const_method(self, recv, node.func.attr, node, env, depth)
                if m is not None:
                    out.append(m)
        for f in funcs:
            q = _ref(f)
            if q is None:
                continue
            args = [r(a, env, depth) for a in node.args[:3]]
            first = args[0] if args else []
            if q in caps.IMPORT_FUNCS:
                for a in first:
                    s = _str(a)
                    if s is None:
                        continue
                    has_from = len(node.args) > 3 or any(k.arg == "fromlist" for k in node.keywords)
                    mod = s if (q != "builtins.__import__" or has_from) else s.split(".")[0]
                    out.append(Val("ref", mod, obf=True))
            elif q == "builtins.getattr" and len(args) >= 2:
                for base in args[0]:
                    bq = _ref(base)
                    for nm in args[1]:
                        s = _str(nm)
                        if bq is not None and s is not None:
                            out.append(Val("ref", f"{bq}.{s}", obf=True))
            elif q in ("builtins.vars",) and first:
                out.extend(Val("ref", x.value, obf=True) for x in first if x.kind == "ref")
            elif q in ("builtins.globals", "builtins.locals") and not node.args:
                out.append(Val("ref", "<globals>", obf=True))
            elif q in ("operator.methodcaller", "operator.attrgetter"):
                for a in first:
                    s = _str(a)
                    if s is not None:
                        out.append(Val("getter", s, obf=True))
            elif q.endswith(".get") and len(args) >= 1:
                # dict-like lookups: vars(builtins).get('eval'), sys.modules.get('os')
                owner = q[: -len(".get")]
                for a in first:
                    s = _str(a)
                    if s is None:
                        continue
                    if owner == "sys.modules":
                        out.append(Val("ref", s, obf=True))
                    elif owner == "<globals>":
                        out.extend(Val("ref", x.value, obf=True) for x in
                                   self.resolve_name(s, {}, depth) if x.kind == "ref")
                    elif owner in ("builtins",) or owner in caps.SENSITIVE_MODULES:
                        out.append(Val("ref", f"{owner}.{s}", obf=True))
            elif q in _DECODERS:
                if q == "builtins.chr":
                    for a in first:
                        if a.kind == "int" and isinstance(a.value, int) and 0 <= a.value < 0x110000:
                            out.append(Val("str", chr(a.value), obf=True, decoded=True))
                elif q == "builtins.reversed":
                    for a in first:
                        if isinstance(a.value, str):
                            out.append(Val("seq", tuple(Val("str", ch) for ch in a.value[::-1]),
                                           obf=True, decoded=True))
                else:
                    for combo in _combos(args):
                        d = _decode_call(q, combo)
                        if d is not None:
                            out.append(d)
            elif q == "builtins.compile" and first:
                out.extend(Val("code", a.value, obf=a.obf, decoded=a.decoded) for a in first
                           if a.kind in ("str", "bytes"))
            elif q in ("builtins.str", "builtins.bytes", "builtins.bytearray") and first:
                for a in first:
                    if q == "builtins.str" and a.kind == "str":
                        out.append(a)
                    elif q != "builtins.str" and a.kind == "seq":
                        ints = _as_ints(a)
                        if ints is not None:
                            out.append(Val("bytes", bytes(ints), obf=True, decoded=True))
                    elif q != "builtins.str" and a.kind == "bytes":
                        out.append(a)
                    elif q != "builtins.str" and a.kind == "str" and len(args) > 1:
                        assert isinstance(a.value, str)
                        out.append(Val("bytes", a.value.encode("utf-8", "replace"), obf=a.obf,
                                       decoded=a.decoded))
            elif q in ("builtins.map",) and len(args) >= 2:
                for fn in args[0]:
                    if _ref(fn) == "builtins.chr":
                        for seq in args[1]:
                            ints = _as_ints(seq)
                            if ints is not None and all(0 <= i < 0x110000 for i in ints):
                                out.append(Val("seq", tuple(Val("str", chr(i)) for i in ints),
                                               obf=True, decoded=True))
            elif q in ("builtins.list", "builtins.tuple") and first:
                out.extend(a for a in first if a.kind == "seq")
                for a in first:
                    if isinstance(a.value, str):
                        out.append(Val("seq", tuple(Val("str", ch) for ch in a.value),
                                       obf=True, decoded=a.decoded))
            elif q == "builtins.range" and 1 <= len(args) <= 3:
                bounds = [self._int(a, env, depth) for a in node.args[:3]]
                if all(bd is not None for bd in bounds):
                    rng = range(*[bd for bd in bounds if bd is not None])
                    if len(rng) <= _MAX_SEQ:
                        out.append(Val("seq", tuple(Val("int", i) for i in rng)))
            elif q in ("builtins.int",) and first:
                radix = self._int(node.args[1], env, depth) if len(node.args) > 1 else 10
                for a in first:
                    s = _str(a)
                    if s is not None and radix is not None and len(s) < 200:
                        with contextlib.suppress(ValueError):
                            out.append(Val("int", int(s, radix), obf=True))
            elif q == "builtins.ord" and first:
                for a in first:
                    s = _str(a)
                    if s is not None and len(s) == 1:
                        out.append(Val("int", ord(s)))
        return out


def _combos(args: list[list[Val]]) -> Iterator[list[Val]]:
    """First-candidate combinations of resolved arguments (bounded)."""
    if not args:
        return
    heads = args[0][:4]
    rest = [a[0] for a in args[1:] if a]
    if len(rest) != len(args) - 1:
        rest = rest[:0]
    for h in heads:
        yield [h, *rest]


def _as_seq(v: Val) -> tuple[Val, ...] | None:
    if v.kind == "seq" and isinstance(v.value, tuple):
        return v.value
    if v.kind == "bytes" and isinstance(v.value, bytes):
        return tuple(Val("int", i) for i in v.value)
    if v.kind == "str" and isinstance(v.value, str):
        return tuple(Val("str", ch) for ch in v.value)
    return None


def _as_ints(v: Val) -> list[int] | None:
    seq = _as_seq(v)
    if seq is None:
        return None
    out = []
    for x in seq:
        if x.kind != "int" or not isinstance(x.value, int) or not 0 <= x.value < 256 ** 4:
            return None
        out.append(x.value)
    return out


def _const_method(
    res: _Resolver, recv: Val, meth: str, node: ast.Call, env: dict[str, list[Val]], depth: int
) -> Val | None:
    """Evaluate a pure ``str``/``bytes`` method on a constant receiver."""
    if recv.kind not in ("str", "bytes") or not isinstance(recv.value, str | bytes):
        return None
    s = recv.value
    args = [res.resolve(a, env, depth) for a in node.args[:2]]
    a0 = args[0][0] if args and len(args[0]) == 1 else None
    try:
        if meth == "join" and a0 is not None:
            seq = _as_seq(a0)
            if seq is None:
                return None
            parts = [x.value for x in seq]
            if isinstance(s, str) and all(isinstance(p, str) for p in parts):
                return Val("str", s.join(parts), obf=True,  # type: ignore[arg-type]
                           decoded=a0.decoded or any(x.decoded for x in seq))
            if isinstance(s, bytes) and all(isinstance(p, bytes) for p in parts):
                return Val("bytes", s.join(parts), obf=True, decoded=a0.decoded)  # type: ignore[arg-type]
            return None
        if meth in ("lower", "upper", "strip", "lstrip", "rstrip", "title", "capitalize",
                    "swapcase", "casefold") and not node.args:
            return Val(recv.kind, getattr(s, meth)(), obf=True, decoded=recv.decoded)
        if meth == "replace" and len(args) == 2 and a0 is not None and len(args[1]) == 1:
            a1 = args[1][0]
            if type(a0.value) is type(s) and type(a1.value) is type(s):
                return Val(recv.kind, s.replace(a0.value, a1.value), obf=True,  # type: ignore[arg-type]
                           decoded=recv.decoded)
        if meth == "decode" and isinstance(s, bytes):
            enc = _str(a0) if a0 is not None else "utf-8"
            if enc is None:
                return None
            if enc.lower().replace("-", "_") in ("hex", "base64", "rot13", "zlib"):
                d = _decode_call("codecs.decode", [recv, Val("str", enc)])
                return d
            return Val("str", s.decode(enc, "replace"), obf=recv.obf, decoded=recv.decoded)
        if meth == "encode" and isinstance(s, str):
            enc = _str(a0) if a0 is not None else "utf-8"
            if enc is None:
                return None
            if enc.lower().replace("-", "_") in ("rot13", "rot_13"):
                return Val("str", codecs.decode(s, "rot13"), obf=True, decoded=True)
            return Val("bytes", s.encode(enc, "replace"), obf=recv.obf, decoded=recv.decoded)
        if meth == "format" and isinstance(s, str):
            vals = []
            for a in node.args:
                av = res.resolve(a, env, depth)
                if len(av) != 1 or av[0].kind not in ("str", "int"):
                    return None
                vals.append(av[0].value)
            return Val("str", s.format(*vals), obf=True, decoded=recv.decoded)
        if meth == "translate" and isinstance(s, str) and a0 is not None:
            return None
        if meth == "split" and isinstance(s, str):
            sep = _str(a0) if a0 is not None else None
            return Val("seq", tuple(Val("str", p) for p in s.split(sep)), obf=True)
    except (LookupError, ValueError, TypeError, IndexError, KeyError):
        return None
    return None


def _dedupe(vals: list[Val]) -> list[Val]:
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


_INERT_SUFFIXES = ("Error", "Exception", "Expired", "Warning")
_INERT_MEMBERS = frozenset({
    "PIPE", "STDOUT", "DEVNULL", "CompletedProcess", "codes", "exceptions",
    "__name__", "__file__", "__version__", "__doc__", "__all__",
})


def _inert_member(name: str) -> bool:
    """Whether a member of a module matched by a ``prefix.*`` capability is data, not an entry
    point: a known constant (``subprocess.PIPE``) or an exception class (``requests.HTTPError``).
    An explicit list: ALL-CAPS alone would also exempt ``ctypes.CDLL``."""
    return name in _INERT_MEMBERS or name.endswith(_INERT_SUFFIXES)


def _is_true(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and bool(node.value) and node.value is not None


def _has_exit(body: Sequence[ast.stmt]) -> bool:
    """Whether a loop body can leave the loop (break/return/raise/yield/sys.exit)."""
    stack: list[ast.AST] = list(body)
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Break | ast.Return | ast.Raise | ast.Yield | ast.YieldFrom):
            return True
        if isinstance(n, ast.Call):
            f = n.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(
                f, ast.Name) else ""
            if name in ("exit", "_exit", "quit", "abort"):
                return True
        if isinstance(n, ast.While | ast.For | ast.AsyncFor):
            # a break inside a nested loop leaves only that loop
            stack.extend(n.orelse)
            stack.extend(x for x in ast.walk(n) if isinstance(
                x, ast.Return | ast.Raise | ast.Yield | ast.YieldFrom))
            continue
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        stack.extend(ast.iter_child_nodes(n))
    return False


class _Pass:
    """One walk over one module (or one decoded payload)."""

    def __init__(self, source: Source, tree: ast.Module, payload_depth: int = 0) -> None:
        self.source = source
        self.tree = tree
        self.nodes = _flatten(tree)
        self.b = _collect(self.nodes)
        self.res = _Resolver(self.b)
        self.findings: dict[tuple[str, int, int], Finding] = {}
        self.payload_depth = payload_depth
        self.loops: list[Literal["infinite", "big", "bounded"]] = []  # around the current node
        self._loop_kinds: dict[int, Literal["infinite", "big", "bounded"]] = {}
        self.call_funcs: set[int] = set()  # ids of nodes that are the func of a Call
        self.store_ids: set[int] = set()
        # ids of expressions whose value is only inspected by built-in machinery, never handed
        # on: the classes of isinstance/issubclass and of except clauses
        self.inert_ids: set[int] = set()

    # -- reporting ---------------------------------------------------------------------------
    def add(
        self, node: ast.AST, rule: str, category: str, level: Level, msg: str,
        cwe: int | None = None, confidence: Confidence = "high",
    ) -> None:
        line = getattr(node, "lineno", 1)
        col0 = getattr(node, "col_offset", 0)
        raw = self.source.lines[line - 1] if 1 <= line <= len(self.source.lines) else ""
        col = len(raw.encode("utf-8")[:col0].decode("utf-8", "replace")) + 1
        key = (rule, line, col)
        old = self.findings.get(key)
        if old is not None and old.severity >= level:
            return
        self.findings[key] = Finding(
            tool=TOOL, rule_id=rule, category=category, severity=level,
            confidence=confidence, cwe=cwe, line=line, column=col,
            source_line=raw.strip()[:300], message=msg,
        )

    def add_cap(self, node: ast.AST, qual: str, cap: caps.Capability, obf: bool,
                level: Level | None = None, ref: bool = False) -> None:
        lv = level or cap.level
        msg = f"{cap.message} ({qual})"
        if ref:
            msg += ", handed on as a value to be called elsewhere"
        if obf:
            lv = lv.bump()
            msg += ", reached through an obfuscated or reflective lookup"
            self.add(node, "cb.obfuscation.hidden-call", "obfuscation", Level.HIGH,
                     f"hides a call to {qual} behind computed names or reflection", cwe=506)
        self.add(node, cap.rule_id, cap.category, lv, msg, cap.cwe, cap.confidence)

    # -- traversal ---------------------------------------------------------------------------
    def run(self) -> list[Finding]:
        for node, _ in self.nodes:
            if isinstance(node, ast.Call):
                self.call_funcs.add(id(node.func))
            elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
                targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [
                    node.target]
                for t in targets:
                    self.store_ids.add(id(t))
            self._mark_inert(node)
        for node, loops in self.nodes:
            visitor = getattr(self, "visit_" + type(node).__name__, None)
            if visitor is not None:
                self.loops = [self._loop_kind(lp) for lp in loops]
                visitor(node)
        self._check_imports()
        return list(self.findings.values())

    def _mark_inert(self, node: ast.AST) -> None:
        """Record expressions whose value Python only inspects with built-in machinery.

        ``isinstance(x, C)`` / ``issubclass(X, C)`` consult the metaclass of ``C`` (built-in for
        every capability) and ``except C:`` matches exception classes. Annotations and comparison
        operands are *not* inert: annotations are kept in ``__annotations__`` and ``a == f`` or
        ``f in a`` hands ``f`` to a user-defined ``__eq__``/``__contains__``.
        """
        inert: ast.expr | None = None
        if isinstance(node, ast.ExceptHandler):
            inert = node.type
        elif isinstance(node, ast.Call) and len(node.args) == 2 and not node.keywords:
            fq = {_ref(v) for v in self.res.resolve(node.func)}
            if fq and fq <= {"builtins.isinstance", "builtins.issubclass"}:
                inert = node.args[1]
        if inert is not None:
            self.inert_ids.add(id(inert))
            if isinstance(inert, ast.Tuple):
                self.inert_ids.update(id(e) for e in inert.elts)

    def _check_imports(self) -> None:
        for mod, line in self.b.imported_modules:
            top = mod.split(".")[0]
            if top in ("ctypes", "_ctypes", "cffi", "_cffi_backend"):
                node = ast.Pass(lineno=line, col_offset=0)
                self.add(node, "cb.ffi.import", "ffi", Level.CRITICAL,
                         f"imports {mod}: native code can bypass every Python-level control",
                         cwe=111)

    def visit_While(self, node: ast.While) -> None:
        infinite = _is_true(node.test)
        if infinite and not _has_exit(node.body):
            self.add(node, "cb.resource.unbounded-loop", "resource", Level.MEDIUM,
                     "loops forever with no way out (break, return or exit)", cwe=835,
                     confidence="medium")
            grows = any(
                isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                and n.func.attr in ("append", "extend", "write", "add", "insert")
                for n in ast.walk(node)
            ) or any(isinstance(n, ast.AugAssign) for n in ast.walk(node))
            if grows:
                self.add(node, "cb.resource.memory-growth", "resource", Level.HIGH,
                         "grows data without bound inside an endless loop (memory bomb)",
                         cwe=400)

    def _loop_kind(self, node: ast.AST) -> Literal["infinite", "big", "bounded"]:
        cached = self._loop_kinds.get(id(node))
        if cached is not None:
            return cached
        kind: Literal["infinite", "big", "bounded"] = "bounded"
        if isinstance(node, ast.While):
            kind = "infinite" if _is_true(node.test) else "bounded"
        it = node.iter if isinstance(node, ast.For | ast.AsyncFor) else None
        if isinstance(it, ast.Call):
            fq = {_ref(v) for v in self.res.resolve(it.func)}
            if "itertools.count" in fq or ("itertools.repeat" in fq and len(it.args) < 2):
                kind = "infinite"
            elif "builtins.range" in fq and it.args:
                n = self.res._int(it.args[-1] if len(it.args) == 1 else it.args[1], {}, 0)
                if n is None or n >= _BIG_LOOP:
                    kind = "big"
        self._loop_kinds[id(node)] = kind
        return kind

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.name in ("__reduce__", "__reduce_ex__", "__setstate__"):
            self.add(node, "cb.deserialization.gadget", "deserialization", Level.HIGH,
                     f"defines {node.name}, the hook pickle calls to run code on load", cwe=502)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        if attr in caps.ESCAPE_ATTRS:
            self.add(node, "cb.escape.dunder-walk", "escape", Level.CRITICAL,
                     f"accesses {attr}, used to walk from any object to interpreter internals",
                     cwe=693)
        elif attr in ("__mro__", "__bases__", "__base__") and isinstance(
            node.value, ast.Attribute) and node.value.attr == "__class__":
            self.add(node, "cb.escape.class-walk", "escape", Level.CRITICAL,
                     f"walks __class__.{attr}, the first step of a sandbox escape", cwe=693)
        if id(node) in self.store_ids:
            self._check_store(node)
        elif id(node) not in self.call_funcs:
            self._check_reference(node)
        if attr in ("environ",):
            self._check_environ_use(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in ("__builtins__", "__builtin__"):
            self.add(node, "cb.obfuscation.builtins-ref", "obfuscation", Level.MEDIUM,
                     "reaches into __builtins__ directly instead of calling builtins by name",
                     cwe=506)
            if id(node) in self.store_ids:
                self.add(node, "cb.escape.builtins-tamper", "escape", Level.CRITICAL,
                         "replaces __builtins__", cwe=693)
        elif id(node) not in self.call_funcs and id(node) not in self.store_ids and isinstance(
                node.ctx, ast.Load):
            # imported names, assigned names, builtins (map(eval, ...)), star imports
            self._check_reference(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if id(node) in self.store_ids:
            self._check_store(node)
        elif id(node) not in self.call_funcs and isinstance(node.ctx, ast.Load):
            # vars(os)['system'] or sys.modules['os'] handed on as a value
            self._check_reference(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and len(node.value) < 4096:
            self._check_string(node, node.value, obf=False)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        for v in self.res.resolve(node):
            if v.kind == "int" and v.value == _HUGE and isinstance(node.op, ast.Pow | ast.LShift
                                                                   | ast.Mult):
                self.add(node, "cb.resource.huge-number", "resource", Level.HIGH,
                         "computes an enormous number (CPU and memory bomb)", cwe=400)
            elif isinstance(v.value, str) and v.obf:
                self._check_string(node, v.value, obf=True, decoded=v.decoded)
        if isinstance(node.op, ast.Mult):
            self._check_alloc(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        for v in self.res.resolve(node):
            if isinstance(v.value, str) and v.obf:
                self._check_string(node, v.value, obf=True, decoded=v.decoded)


    def visit_Call(self, node: ast.Call) -> None:
        # values produced by folding/decoding anywhere in a call (chr joins, b64decode, ...)
        for v in self.res.resolve(node):
            if v.kind in ("str", "bytes") and v.obf:
                text = v.value if isinstance(v.value, str) else bytes(
                    v.value).decode("utf-8", "replace")  # type: ignore[call-overload]
                self._check_string(node, text, obf=True, decoded=v.decoded)
        if id(node) not in self.call_funcs:
            # getattr(os, 'sys'+'tem') handed on as a value rather than called here
            self._check_reference(node)
        for f in self.res.resolve(node.func):
            q = _ref(f)
            if q is not None:
                self._check_call(node, q, f.obf)
            elif f.kind == "getter":
                self._check_getter_call(node, str(f.value))

    # -- checks ------------------------------------------------------------------------------
    def _check_string(self, node: ast.AST, s: str, obf: bool, decoded: bool = False) -> None:
        if _ESCAPE_PATH.search(s) and len(s) < 512:
            self.add(node, "cb.escape.path", "escape", Level.CRITICAL,
                     f"names a path used to persist or escape ({s[:80]!r}): site-packages, "
                     ".pth/sitecustomize, container runtime or kernel interfaces", cwe=668)
        elif _SENSITIVE_PATH.search(s) and len(s) < 512:
            self.add(node, "cb.filesystem.sensitive-path", "filesystem", Level.HIGH,
                     f"names a sensitive system path ({s[:80]!r})", cwe=22)
        if not obf:
            return
        if s in caps.SENSITIVE_NAMES:
            lv = Level.HIGH if decoded else Level.MEDIUM
            self.add(node, "cb.obfuscation.folded-name", "obfuscation", lv,
                     f"builds the name {s!r} from pieces or an encoding to hide it", cwe=506)
        if decoded and self.payload_depth < _MAX_PAYLOAD_DEPTH:
            self._check_payload(node, s, executed=False)

    def _check_payload(self, node: ast.AST, text: str, executed: bool) -> bool:
        """Analyze a decoded or literal string as Python. True when it had findings."""
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return False
        if not any(isinstance(n, ast.Call | ast.Import | ast.ImportFrom | ast.Attribute)
                   for n in ast.walk(tree)):
            return False
        inner_src = Source(text, "<payload>", tuple(text.splitlines()))
        inner = _Pass(inner_src, tree, self.payload_depth + 1).run()
        found = False
        for f in inner:
            if f.severity < Level.MEDIUM and not executed:
                continue
            found = True
            lv = f.severity if not executed else max(f.severity, Level.MEDIUM)
            self.add(node, f.rule_id, f.category, lv.bump() if lv >= Level.MEDIUM else lv,
                     f"in a hidden payload: {f.message}", f.cwe, f.confidence)
        return found

    def _check_reference(self, node: ast.expr) -> None:
        """A dangerous callable used as a value rather than called here.

        ``map(os.system, ...)``, ``f = os.system``, ``[os.popen]``, ``key=os.system``,
        ``Thread(target=os.system)``, ``staticmethod(os.system)``, ``partial(subprocess.run)``,
        ``return os.system``, a decorator: whoever receives the value can call it, so the
        reference counts as the capability at the level it has when called (raised one level
        when reached through an obfuscated lookup). The classes of ``isinstance``/``except`` and
        the constants and exception classes of a flagged module (``subprocess.PIPE``,
        ``requests.HTTPError``) are not references.
        """
        if id(node) in self.inert_ids:
            return
        for v in self.res.resolve(node):
            q = _ref(v)
            if q is None:
                continue
            fn = q.rsplit(".", 1)[-1]
            if q in caps.EXEC_FUNCS:
                if v.obf:
                    self.add(node, "cb.dynamic-code.hidden-exec", "dynamic-code", Level.CRITICAL,
                             f"looks up {fn} by reflection", cwe=95)
                else:
                    self.add(node, "cb.dynamic-code.exec", "dynamic-code", Level.HIGH,
                             f"hands {fn}() on as a value: whoever calls it runs code built at "
                             "run time", cwe=95)
                continue
            if q in caps.IMPORT_FUNCS:
                self.add(node, "cb.dynamic-code.computed-import", "dynamic-code",
                         Level.CRITICAL if v.obf else Level.HIGH,
                         f"hands {fn}() on as a value: it imports modules named at run time",
                         cwe=829)
                continue
            cap = caps.lookup(q)
            if cap is None or (q not in caps.CAPABILITIES and _inert_member(fn)):
                continue
            self.add_cap(node, q, cap, obf=v.obf, ref=True)

    def _check_store(self, target: ast.Attribute | ast.Subscript) -> None:
        owners = self.res.resolve(target.value)
        for o in owners:
            q = _ref(o)
            if q is None:
                continue
            if q in ("sys.modules", "sys.meta_path", "sys.path_hooks",
                     "sys.path_importer_cache") or q.startswith("sys.modules."):
                self.add(target, "cb.escape.import-system", "escape", Level.CRITICAL,
                         f"tampers with {q}, hijacking what later imports return", cwe=829)
            elif q in ("builtins", "<globals>"):
                if q == "builtins" or any(_str(k) in ("__builtins__",)
                                          for k in self.res.resolve(getattr(target, "slice",
                                                                            None))):
                    self.add(target, "cb.escape.builtins-tamper", "escape", Level.CRITICAL,
                             "replaces built-in functions for all code in the interpreter",
                             cwe=693)
            elif q == "os.environ" and isinstance(target, ast.Subscript):
                keys = [_str(k) for k in self.res.resolve(target.slice)]
                if any(k in _DANGEROUS_ENV for k in keys if k):
                    self.add(target, "cb.environment.loader-hijack", "environment", Level.HIGH,
                             f"sets {', '.join(k for k in keys if k)}, which changes what code "
                             "the dynamic loader or interpreter runs", cwe=427)
                else:
                    self.add(target, "cb.environment.write", "environment", Level.LOW,
                             "sets an environment variable", cwe=454, confidence="medium")
            elif isinstance(target, ast.Attribute) and (
                q in caps.SENSITIVE_MODULES and q not in ("sys", "io")
            ):
                self.add(target, "cb.escape.monkeypatch", "escape", Level.CRITICAL,
                         f"replaces {q}.{target.attr} for all code in the interpreter", cwe=693)

    def _check_environ_use(self, node: ast.Attribute) -> None:
        if not any(_ref(v) == "os.environ" for v in self.res.resolve(node)):
            return
        parent_call = None
        for n in ast.walk(self.tree):  # cheap enough: environ is rare
            if isinstance(n, ast.Call) and (
                any(a is node for a in n.args)
                or (isinstance(n.func, ast.Attribute) and n.func.value is node)
            ):
                parent_call = n
                break
            if isinstance(n, ast.For | ast.comprehension) and n.iter is node:
                self.add(node, "cb.environment.dump", "environment", Level.MEDIUM,
                         "reads every environment variable (secrets live there)", cwe=526)
                return
        if parent_call is None:
            return
        f = parent_call.func
        if isinstance(f, ast.Attribute) and f.value is node:
            if f.attr in ("copy", "items", "keys", "values", "__iter__"):
                self.add(node, "cb.environment.dump", "environment", Level.MEDIUM,
                         "reads every environment variable (secrets live there)", cwe=526)
            elif f.attr in ("update", "setdefault", "pop", "clear", "__setitem__", "popitem"):
                self.add(node, "cb.environment.write", "environment", Level.LOW,
                         "changes environment variables", cwe=454, confidence="medium")
        else:
            names = {_ref(v) for v in self.res.resolve(f)}
            if names & {"builtins.dict", "builtins.print", "builtins.str", "builtins.repr",
                        "json.dumps", "json.dump", "builtins.list", "builtins.sorted"}:
                self.add(node, "cb.environment.dump", "environment", Level.MEDIUM,
                         "reads every environment variable (secrets live there)", cwe=526)

    def _check_alloc(self, node: ast.BinOp) -> None:
        sides = (node.left, node.right)
        for a, c in (sides, sides[::-1]):
            n = self.res._int(c, {}, 0)
            if n is None or n < _BIG_ALLOC:
                continue
            if isinstance(a, ast.List | ast.Tuple) or any(
                v.kind in ("str", "bytes", "seq") for v in self.res.resolve(a)
            ):
                self.add(node, "cb.resource.huge-allocation", "resource", Level.HIGH,
                         f"allocates a sequence of {n:,} elements or more (memory bomb)",
                         cwe=400)

    def _check_getter_call(self, node: ast.Call, name: str) -> None:
        if name in caps.ESCAPE_ATTRS:
            self.add(node, "cb.escape.dunder-walk", "escape", Level.CRITICAL,
                     f"reaches {name} through operator.attrgetter/methodcaller", cwe=693)
        for arg in node.args[:1]:
            for v in self.res.resolve(arg):
                q = _ref(v)
                if q is None:
                    continue
                full = f"{q}.{name}"
                self._check_call(node, full, True)

    def _check_call(self, node: ast.Call, q: str, obf: bool) -> None:
        args = node.args
        if q in caps.EXEC_FUNCS:
            self._check_exec(node, q, obf)
            return
        if q in caps.IMPORT_FUNCS:
            self._check_dynamic_import(node, q, obf)
            return
        if q in ("builtins.getattr", "builtins.setattr", "builtins.delattr",
                 "builtins.hasattr", "object.__getattribute__", "builtins.object.__getattribute__"):
            self._check_reflection(node, q)
            return
        if q in ("operator.methodcaller", "operator.attrgetter") and args:
            for v in self.res.resolve(args[0]):
                s = _str(v)
                if s is None:
                    continue
                if s in caps.ESCAPE_ATTRS:
                    self.add(node, "cb.escape.dunder-walk", "escape", Level.CRITICAL,
                             f"reaches {s} through {q}", cwe=693)
                elif s in caps.SENSITIVE_NAMES or v.obf:
                    self.add(node, "cb.obfuscation.reflective-call", "obfuscation", Level.HIGH,
                             f"calls the method {s!r} indirectly through {q}", cwe=506)
            return
        if q in ("builtins.globals", "builtins.locals", "builtins.vars") and not args:
            return
        if q in _FORK_FUNCS and self.loops:
            self.add(node, "cb.resource.fork-bomb", "resource", Level.CRITICAL,
                     "forks inside a loop (fork bomb)", cwe=400)
        if (q in _SPAWN_IN_LOOP or q in _FORK_FUNCS) and any(
                k in ("infinite", "big") for k in self.loops):
            self.add(node, "cb.resource.spawn-bomb", "resource", Level.HIGH,
                     f"starts threads or processes in an unbounded loop ({q})", cwe=400)
        if q in ("builtins.bytearray", "builtins.bytes") and args:
            n = self.res._int(args[0], {}, 0)
            if n is not None and n >= _BIG_ALLOC:
                self.add(node, "cb.resource.huge-allocation", "resource", Level.HIGH,
                         f"allocates {n:,} bytes (memory bomb)", cwe=400)
        if q == "sys.setrecursionlimit" and args:
            n = self.res._int(args[0], {}, 0)
            if n is None or n > 100_000:
                self.add(node, "cb.resource.recursion-limit", "resource", Level.MEDIUM,
                         "raises the recursion limit far enough to crash the interpreter",
                         cwe=674)
        if q == "signal.signal" and len(args) >= 2:
            sigs = {(_ref(v) or "").rsplit(".", 1)[-1] for v in self.res.resolve(args[0])}
            handler = {_ref(v) for v in self.res.resolve(args[1])}
            if sigs & _KILL_SIGNALS and ("signal.SIG_IGN" in handler or not handler or any(
                    h and h.startswith("<local>") for h in handler)) and (
                    "signal.SIG_IGN" in handler or sigs & {"SIGTERM", "SIGXCPU", "SIGALRM"}):
                self.add(node, "cb.resource.ignore-signals", "resource", Level.HIGH,
                         "ignores or intercepts the signals used to stop runaway code", cwe=400)
        if q in ("yaml.load", "yaml.load_all") and not any(
                "Safe" in ast.unparse(k.value) or "BaseLoader" in ast.unparse(k.value)
                for k in node.keywords) and not (len(args) > 1 and "Safe" in ast.unparse(args[1])):
            self.add(node, "cb.deserialization.yaml", "deserialization", Level.HIGH,
                     "loads YAML with a loader that can build arbitrary objects", cwe=502)
        if q in ("numpy.load",) and any(k.arg == "allow_pickle" and _is_true(k.value)
                                        for k in node.keywords):
            self.add(node, "cb.deserialization.numpy-pickle", "deserialization", Level.HIGH,
                     "loads a NumPy file with pickles allowed", cwe=502)
        if q in ("sys.modules.pop", "sys.modules.update", "sys.modules.setdefault",
                 "sys.modules.clear", "sys.modules.__setitem__", "sys.modules.__delitem__",
                 "sys.meta_path.insert", "sys.meta_path.append", "sys.path_hooks.insert",
                 "sys.path_hooks.append", "sys.meta_path.clear", "sys.path_hooks.clear"):
            self.add(node, "cb.escape.import-system", "escape", Level.CRITICAL,
                     f"tampers with the import system ({q})", cwe=829)
            return
        if q in ("os.getenv", "os.environ.get", "os.environ.pop") and args:
            for v in self.res.resolve(args[0]):
                s = _str(v)
                if s and _SECRET_ENV.search(s):
                    self.add(node, "cb.environment.secret", "environment", Level.MEDIUM,
                             f"reads the secret-looking environment variable {s!r}", cwe=526)
        if q == "builtins.open" and args and len(args) > 1:
            pass  # paths are checked as strings; open() in the cwd is ordinary
        cap = caps.lookup(q)
        if cap is None:
            return
        level: Level | None = None
        if cap.category == "filesystem" and args:
            for v in self.res.resolve(args[0]):
                s = _str(v)
                if s and (s.startswith(("/", "~")) and not s.startswith(_TMP_DIRS)):
                    level = Level.HIGH
        if q in ("socket.socket", "_socket.socket") and args:
            kinds = {(_ref(v) or "") for a in args[:3] for v in self.res.resolve(a)}
            kinds |= {(_ref(v) or "") for k in node.keywords for v in self.res.resolve(k.value)}
            if any(k.endswith(("SOCK_RAW", "AF_PACKET", "AF_NETLINK")) for k in kinds):
                self.add(node, "cb.network.raw-socket", "network", Level.CRITICAL,
                         "opens a raw or packet socket (sniffing, spoofing, kernel access)",
                         cwe=250)
        self.add_cap(node, q, cap, obf, level)

    def _check_exec(self, node: ast.Call, q: str, obf: bool) -> None:
        fn = q.split(".")[-1]
        if not node.args:
            return
        arg = node.args[0]
        vals = self.res.resolve(arg)
        consts = [v for v in vals if v.kind in ("str", "bytes", "code")]
        hidden = obf or any(v.obf or v.decoded for v in consts) or self._mentions_decoder(arg)
        if hidden:
            self.add(node, "cb.dynamic-code.obfuscated", "dynamic-code", Level.CRITICAL,
                     f"runs code with {fn}() that was decoded, assembled or looked up "
                     "indirectly to hide it", cwe=95)
        elif consts:
            self.add(node, "cb.dynamic-code.constant", "dynamic-code", Level.MEDIUM,
                     f"runs a constant string with {fn}()", cwe=95, confidence="medium")
        else:
            self.add(node, "cb.dynamic-code.exec", "dynamic-code", Level.HIGH,
                     f"runs code built at run time with {fn}()", cwe=95)
        if self.payload_depth < _MAX_PAYLOAD_DEPTH:
            for v in consts:
                text = v.value.decode("utf-8", "replace") if isinstance(
                    v.value, bytes) else str(v.value)
                self._check_payload(node, text, executed=True)

    def _mentions_decoder(self, expr: ast.AST, depth: int = 0, seen: set[str] | None = None
                          ) -> bool:
        """Whether ``expr`` (following names and local functions) passes through a decoder."""
        if depth > 6:
            return False
        seen = seen if seen is not None else set()
        for n in ast.walk(expr):
            if isinstance(n, ast.Call):
                for f in self.res.resolve(n.func):
                    q = _ref(f)
                    if q in _DECODERS or q in ("zlib.decompress", "marshal.loads"):
                        return True
                    if q and q.startswith("<local>."):
                        name = q.split(".", 1)[1]
                        if name not in seen:
                            seen.add(name)
                            for fd in self.b.functions.get(name, ()):
                                if self._mentions_decoder(fd, depth + 1, seen):
                                    return True
                # .decode() alone is ordinary; .decode("rot13"), .fromhex(...) etc. are not
                if isinstance(n.func, ast.Attribute) and n.func.attr in (
                        "decode", "fromhex", "decompress", "b64decode", "translate") and (
                        n.func.attr != "decode" or n.args):
                    return True
            elif isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Slice):
                st = n.slice.step
                if isinstance(st, ast.UnaryOp) and isinstance(st.op, ast.USub):
                    return True
            elif isinstance(n, ast.Name) and n.id not in seen:
                seen.add(n.id)
                for v in self.b.values.get(n.id, ()):
                    if self._mentions_decoder(v, depth + 1, seen):
                        return True
        return False

    def _check_dynamic_import(self, node: ast.Call, q: str, obf: bool) -> None:
        if not node.args:
            return
        vals = self.res.resolve(node.args[0])
        names = [(s, v) for v in vals if (s := _str(v)) is not None]
        if not names:
            self.add(node, "cb.dynamic-code.computed-import", "dynamic-code", Level.HIGH,
                     "imports a module whose name is computed at run time", cwe=829)
            return
        for s, v in names:
            top = s.split(".")[0]
            self.b.imported_modules.append((s, node.lineno))
            sensitive = top in caps.SENSITIVE_MODULES or s in caps.SENSITIVE_MODULES
            if v.obf or v.decoded or obf:
                self.add(node, "cb.obfuscation.hidden-import", "obfuscation",
                         Level.HIGH if sensitive else Level.MEDIUM,
                         f"imports {s!r} under a name assembled at run time", cwe=506)
            elif q == "builtins.__import__":
                self.add(node, "cb.obfuscation.dunder-import", "obfuscation",
                         Level.MEDIUM if sensitive else Level.LOW,
                         f"imports {s!r} with __import__() instead of an import statement",
                         cwe=506, confidence="medium")

    def _check_reflection(self, node: ast.Call, q: str) -> None:
        args = node.args
        if len(args) < 2:
            return
        owners = [v for v in self.res.resolve(args[0]) if v.kind == "ref"]
        names = self.res.resolve(args[1])
        for nm in names:
            s = _str(nm)
            if s in caps.ESCAPE_ATTRS:
                self.add(node, "cb.escape.dunder-walk", "escape", Level.CRITICAL,
                         f"reaches {s} through {q.split('.')[-1]}()", cwe=693)
        owner_names = {str(o.value) for o in owners}
        sensitive = {o for o in owner_names if o.split(".")[0] in caps.SENSITIVE_MODULES
                     or o in ("builtins", "<globals>")}
        if q == "builtins.setattr" and sensitive:
            self.add(node, "cb.escape.monkeypatch", "escape", Level.CRITICAL,
                     f"replaces attributes of {', '.join(sorted(sensitive))} by reflection",
                     cwe=693)
            return
        if not names and sensitive:
            self.add(node, "cb.obfuscation.computed-getattr", "obfuscation", Level.HIGH,
                     f"looks up a computed attribute name on {', '.join(sorted(sensitive))}",
                     cwe=506)
        elif sensitive and any(nm.obf or nm.decoded for nm in names):
            self.add(node, "cb.obfuscation.computed-getattr", "obfuscation", Level.HIGH,
                     f"looks up {', '.join(repr(_str(n)) for n in names)} on "
                     f"{', '.join(sorted(sensitive))} with a name assembled at run time", cwe=506)
        elif sensitive and q == "builtins.getattr":
            self.add(node, "cb.obfuscation.getattr-module", "obfuscation", Level.MEDIUM,
                     f"reaches into {', '.join(sorted(sensitive))} with getattr() instead of "
                     "plain attribute access", cwe=506, confidence="medium")


class AstAnalyzer(Analyzer):
    """The in-process AST capability pass."""

    name = TOOL

    def version(self) -> str:
        return VERSION

    def analyze(self, source: Source) -> AnalyzerResult:
        return self.analyze_tree(source, ast.parse(source.text, filename=source.filename))

    def analyze_tree(self, source: Source, tree: ast.Module) -> AnalyzerResult:
        p = _Pass(source, tree)
        findings = p.run()
        mods = tuple(sorted({m for m, _ in p.b.imported_modules}))
        return AnalyzerResult(TOOL, tuple(findings), VERSION, extra={"imports": mods})
