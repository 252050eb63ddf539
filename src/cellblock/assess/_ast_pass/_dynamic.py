"""Dynamic code: ``exec``/``eval``/``compile`` of constant, computed or decoded code, and
imports of modules named at run time."""

from __future__ import annotations

import ast

from cellblock.assess import _capabilities as caps
from cellblock.assess._ast_pass._obfuscation import ObfuscationRules
from cellblock.assess._ast_pass._values import MAX_PAYLOAD_DEPTH, as_str
from cellblock.assess._interface import Level


class DynamicCodeRules(ObfuscationRules):
    """Checks on code run or imported at run time."""

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
        if self.payload_depth < MAX_PAYLOAD_DEPTH:
            for v in consts:
                text = v.value.decode("utf-8", "replace") if isinstance(
                    v.value, bytes) else str(v.value)
                self._check_payload(node, text, executed=True)

    def _check_dynamic_import(self, node: ast.Call, q: str, obf: bool) -> None:
        if not node.args:
            return
        vals = self.res.resolve(node.args[0])
        names = [(s, v) for v in vals if (s := as_str(v)) is not None]
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
