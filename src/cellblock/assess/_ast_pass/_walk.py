"""The visitor core: which checks each kind of node gets."""

from __future__ import annotations

import ast

from cellblock.assess import _capabilities as caps
from cellblock.assess._ast_pass._capability import CapabilityRules
from cellblock.assess._ast_pass._values import HUGE, as_ref
from cellblock.assess._interface import Level


class Pass(CapabilityRules):
    """The full pass: every rule family, dispatched per node type by :meth:`PassBase.run`."""

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
            if v.kind == "int" and v.value == HUGE and isinstance(node.op, ast.Pow | ast.LShift
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
            q = as_ref(f)
            if q is not None:
                self._check_call(node, q, f.obf)
            elif f.kind == "getter":
                self._check_getter_call(node, str(f.value))

