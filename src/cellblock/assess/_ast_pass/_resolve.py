"""Name and alias resolution: expressions to candidate values, through imports, assignments,
reflection (``getattr``, ``sys.modules``, ``importlib``, ``operator``) and constant folding."""

from __future__ import annotations

import ast
import builtins
import contextlib

from cellblock.assess import _capabilities as caps
from cellblock.assess._ast_pass._bindings import Bindings
from cellblock.assess._ast_pass._fold import (
    DECODERS,
    const_method,
    decode_call,
    fold_int,
    formatted_size,
)
from cellblock.assess._ast_pass._values import (
    HUGE,
    MAX_ALTS,
    MAX_COMPREHENSION,
    MAX_DEPTH,
    MAX_SEQ,
    Budget,
    BudgetExhausted,
    Val,
    as_ints,
    as_ref,
    as_seq,
    as_str,
    combos,
    dedupe,
    seq_volume,
    sized_len,
)

_BUILTIN_NAMES = frozenset(dir(builtins))
# the calls whose arguments the resolver evaluates; any other call's arguments are left alone
# (resolving ``f(data)`` would otherwise evaluate ``data``, however large, for nothing)
_ARGUMENT_CALLS = caps.IMPORT_FUNCS | DECODERS | {
    "builtins.getattr", "builtins.vars", "operator.methodcaller", "operator.attrgetter",
    "builtins.compile", "builtins.str", "builtins.bytes", "builtins.bytearray", "builtins.map",
    "builtins.list", "builtins.tuple", "builtins.int", "builtins.ord",
}


class Resolver:
    """Resolves expressions to candidate :class:`Val` values."""

    def __init__(self, bindings: Bindings, budget: Budget | None = None) -> None:
        self.b = bindings
        self.budget = budget or Budget()
        self._memo: dict[int, list[Val]] = {}
        self._active: set[int] = set()

    def resolve(
        self, node: ast.AST | None, env: dict[str, list[Val]] | None = None, depth: int = 0
    ) -> list[Val]:
        if node is None or depth > MAX_DEPTH:
            return []
        key = id(node)
        if not env and key in self._memo:
            return self._memo[key]
        if key in self._active:  # a cycle through bindings: give up on this branch
            return []
        self.budget.tick()
        self._active.add(key)
        try:
            if env:  # evaluating a comprehension, element by element
                self.budget.step()
            out = dedupe(self._resolve(node, env or {}, depth + 1))[:MAX_ALTS]
        except BudgetExhausted:
            out = []  # too costly to evaluate: unknown
        finally:
            self._active.discard(key)
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
            # a binding never sees a comprehension's variables: resolved (and memoized) alone
            out.extend(self.resolve(v, {}, depth))
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
                q = as_ref(base)
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
                    s = as_str(vals[0]) if len(vals) == 1 else None
                    if s is None:
                        iv = vals[0].value if len(vals) == 1 and vals[0].kind == "int" else None
                        if not isinstance(iv, int) or abs(iv) > HUGE:  # no 4,300-digit strings
                            return []
                        s = str(iv)
                    parts.append(s)
                else:
                    return []
            if not self.budget.afford_string(sum(len(p) for p in parts)):
                return []
            return [Val("str", "".join(parts), obf=len(node.values) > 1)]
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            if len(node.elts) > MAX_SEQ:
                return []
            items: list[Val] = []
            for e in node.elts:
                vals = r(e, env, depth)
                if len(vals) != 1:
                    return [Val("seq", ())] if not items and not node.elts else []
                items.append(vals[0])
            self.budget.materialize(seq_volume(len(items)))
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
            lo = self.resolve_int(sl.lower, env, depth)
            hi = self.resolve_int(sl.upper, env, depth)
            st = self.resolve_int(sl.step, env, depth)
            for b in bases:
                if b.kind in ("str", "bytes") and isinstance(b.value, str | bytes):
                    try:
                        sliced = b.value[lo:hi:st]
                    except ValueError:
                        continue
                    self.budget.materialize(len(sliced))
                    out.append(Val(b.kind, sliced, obf=True, decoded=b.decoded or st == -1))
            return out
        keys = self.resolve(sl, env, depth)
        for b in bases:
            q = as_ref(b)
            for k in keys:
                ks = as_str(k)
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
                elif b.kind == "seq" and k.kind == "int" and isinstance(b.value, tuple | range):
                    idx = k.value
                    if isinstance(idx, int) and -len(b.value) <= idx < len(b.value):
                        item = b.value[idx]
                        out.append(Val("int", item) if isinstance(item, int) else item)
                elif b.kind in ("str", "bytes") and k.kind == "int" and isinstance(
                    b.value, str | bytes
                ) and isinstance(k.value, int) and -len(b.value) <= k.value < len(b.value):
                    item = b.value[k.value]
                    if isinstance(item, int):
                        out.append(Val("int", item))
                    else:
                        out.append(Val("str", item, obf=True))
        return out

    def resolve_int(
        self, node: ast.expr | None, env: dict[str, list[Val]], depth: int
    ) -> int | None:
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
                    assert isinstance(a.value, str | bytes) and isinstance(c.value, str | bytes)
                    if not self.budget.afford_string(len(a.value) + len(c.value)):
                        continue
                    out.append(Val(a.kind, a.value + c.value, obf=True, decoded=dec))  # type: ignore[operator]
                elif a.kind == "int" and c.kind == "int":
                    assert isinstance(a.value, int) and isinstance(c.value, int)
                    iv = fold_int(node.op, a.value, c.value)
                    if iv is not None:
                        out.append(Val("int", iv, obf=obf))
                elif isinstance(node.op, ast.Mod) and a.kind == "str":
                    args = c.value if isinstance(c.value, tuple) else (c,)
                    assert isinstance(args, tuple) and isinstance(a.value, str)
                    bound = formatted_size(self, a.value, [x.value for x in args], percent=True)
                    if bound is None:
                        continue
                    self.budget.materialize(bound)
                    try:
                        formatted = a.value % tuple(x.value for x in args)
                    except (TypeError, ValueError, KeyError, OverflowError):  # '%c' % -1
                        continue
                    out.append(Val("str", formatted, obf=True, decoded=dec))
                elif isinstance(node.op, ast.Mult) and {a.kind, c.kind} == {"str", "int"}:
                    s, n = (a, c) if a.kind == "str" else (c, a)
                    assert isinstance(s.value, str) and isinstance(n.value, int)
                    if len(s.value) * n.value <= 4096:
                        self.budget.materialize(len(s.value) * n.value)
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
        count = sized_len(iters[0])
        if count is None or count > MAX_COMPREHENSION:
            return []
        self.budget.materialize(seq_volume(count))
        elems = as_seq(iters[0])
        if elems is None:
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
        args: list[list[Val]] | None = None  # resolved once, for the first call that needs them
        # calling the result of methodcaller/attrgetter: f(obj)
        for f in funcs:
            if f.kind == "getter" and node.args:
                for base in r(node.args[0], env, depth):
                    q = as_ref(base)
                    if q is not None:
                        out.append(Val("ref", f"{q}.{f.value}", obf=True))
        # methods on constants ("".join, .replace, .decode, ...)
        if isinstance(node.func, ast.Attribute):
            for recv in r(node.func.value, env, depth):
                m = const_method(self, recv, node.func.attr, node, env, depth)
                if m is not None:
                    out.append(m)
        for f in funcs:
            q = as_ref(f)
            if q is None:
                continue
            if q not in _ARGUMENT_CALLS and not q.endswith(".get"):
                if q == "builtins.range":
                    out.extend(self._range(node, env, depth))
                elif q in ("builtins.globals", "builtins.locals") and not node.args:
                    out.append(Val("ref", "<globals>", obf=True))
                continue
            if args is None:
                args = [r(a, env, depth) for a in node.args[:3]]
            first = args[0] if args else []
            if q in caps.IMPORT_FUNCS:
                for a in first:
                    s = as_str(a)
                    if s is None:
                        continue
                    has_from = len(node.args) > 3 or any(k.arg == "fromlist" for k in node.keywords)
                    mod = s if (q != "builtins.__import__" or has_from) else s.split(".")[0]
                    out.append(Val("ref", mod, obf=True))
            elif q == "builtins.getattr" and len(args) >= 2:
                for base in args[0]:
                    bq = as_ref(base)
                    for nm in args[1]:
                        s = as_str(nm)
                        if bq is not None and s is not None:
                            out.append(Val("ref", f"{bq}.{s}", obf=True))
            elif q in ("builtins.vars",) and first:
                out.extend(Val("ref", x.value, obf=True) for x in first if x.kind == "ref")
            elif q in ("operator.methodcaller", "operator.attrgetter"):
                for a in first:
                    s = as_str(a)
                    if s is not None:
                        out.append(Val("getter", s, obf=True))
            elif q.endswith(".get") and len(args) >= 1:
                # dict-like lookups: vars(builtins).get('eval'), sys.modules.get('os')
                owner = q[: -len(".get")]
                for a in first:
                    s = as_str(a)
                    if s is None:
                        continue
                    if owner == "sys.modules":
                        out.append(Val("ref", s, obf=True))
                    elif owner == "<globals>":
                        out.extend(Val("ref", x.value, obf=True) for x in
                                   self.resolve_name(s, {}, depth) if x.kind == "ref")
                    elif owner in ("builtins",) or owner in caps.SENSITIVE_MODULES:
                        out.append(Val("ref", f"{owner}.{s}", obf=True))
            elif q in DECODERS:
                if q == "builtins.chr":
                    for a in first:
                        if a.kind == "int" and isinstance(a.value, int) and 0 <= a.value < 0x110000:
                            out.append(Val("str", chr(a.value), obf=True, decoded=True))
                elif q == "builtins.reversed":
                    for a in first:
                        if isinstance(a.value, str):
                            # the reversed characters, kept as one string: iterating or joining
                            # it yields what iterating the reversed() object would
                            self.budget.materialize(len(a.value))
                            out.append(Val("str", a.value[::-1], obf=True, decoded=True))
                else:
                    for combo in combos(args):
                        # decoding is paid for by its input, whether it succeeds or not
                        self.budget.materialize(sum(
                            len(v.value) for v in combo if isinstance(v.value, str | bytes)))
                        d = decode_call(q, combo)
                        if d is not None:
                            self.budget.materialize(len(d.value))  # type: ignore[arg-type]
                            out.append(d)
            elif q == "builtins.compile" and first:
                out.extend(Val("code", a.value, obf=a.obf, decoded=a.decoded) for a in first
                           if a.kind in ("str", "bytes"))
            elif q in ("builtins.str", "builtins.bytes", "builtins.bytearray") and first:
                for a in first:
                    if q == "builtins.str" and a.kind == "str":
                        out.append(a)
                    elif q != "builtins.str" and a.kind == "seq":
                        ints = as_ints(a)
                        if ints is not None:
                            self.budget.materialize(len(ints))
                            out.append(Val("bytes", bytes(ints), obf=True, decoded=True))
                    elif q != "builtins.str" and a.kind == "bytes":
                        out.append(a)
                    elif q != "builtins.str" and a.kind == "str" and len(args) > 1:
                        assert isinstance(a.value, str)
                        self.budget.materialize(len(a.value))
                        out.append(Val("bytes", a.value.encode("utf-8", "replace"), obf=a.obf,
                                       decoded=a.decoded))
            elif q in ("builtins.map",) and len(args) >= 2:
                for fn in args[0]:
                    if as_ref(fn) == "builtins.chr":
                        for seq in args[1]:
                            ints = as_ints(seq)
                            if ints is not None and all(0 <= i < 0x110000 for i in ints):
                                self.budget.materialize(seq_volume(len(ints)))
                                out.append(Val("seq", tuple(Val("str", chr(i)) for i in ints),
                                               obf=True, decoded=True))
            elif q in ("builtins.list", "builtins.tuple") and first:
                for a in first:
                    if isinstance(a.value, range):  # materialized, as list(range(...)) is
                        self.budget.materialize(seq_volume(len(a.value)))
                        out.append(Val("seq", as_seq(a) or (), obf=a.obf, decoded=a.decoded))
                    elif a.kind == "seq":
                        out.append(a)
                for a in first:
                    if isinstance(a.value, str):
                        self.budget.materialize(seq_volume(len(a.value)))
                        out.append(Val("seq", tuple(Val("str", ch) for ch in a.value),
                                       obf=True, decoded=a.decoded))
            elif q in ("builtins.int",) and first:
                radix = self.resolve_int(node.args[1], env, depth) if len(node.args) > 1 else 10
                for a in first:
                    s = as_str(a)
                    if s is not None and radix is not None and len(s) < 200:
                        with contextlib.suppress(ValueError):
                            out.append(Val("int", int(s, radix), obf=True))
            elif q == "builtins.ord" and first:
                for a in first:
                    s = as_str(a)
                    if s is not None and len(s) == 1:
                        out.append(Val("int", ord(s)))
        return out

    def _range(self, node: ast.Call, env: dict[str, list[Val]], depth: int) -> list[Val]:
        if not 1 <= len(node.args) <= 3:
            return []
        bounds = [self.resolve_int(a, env, depth) for a in node.args]
        rng: range | None = None
        if all(bd is not None for bd in bounds):
            with contextlib.suppress(ValueError):  # range(1, 2, 0)
                rng = range(*[bd for bd in bounds if bd is not None])
        if rng is None or _length(rng) > MAX_SEQ:
            return []
        return [Val("seq", rng)]  # its elements are materialized (and paid for) when iterated


def _length(rng: range) -> int:
    """len(rng), which overflows above sys.maxsize (range(2 ** 70))."""
    try:
        return len(rng)
    except OverflowError:
        return MAX_SEQ + 1
