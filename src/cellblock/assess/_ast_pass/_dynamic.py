"""Dynamic code: ``exec``/``eval``/``compile`` of constant, computed or decoded code, and
imports of modules named at run time."""

from __future__ import annotations

import ast

from cellblock.assess import _capabilities as caps
from cellblock.assess._ast_pass._obfuscation import ObfuscationRules
from cellblock.assess._ast_pass._provenance import ProvenanceTracer
from cellblock.assess._ast_pass._values import MAX_PAYLOAD_DEPTH, Val, as_str
from cellblock.assess._interface import Level


def _text(v: Val) -> str:
    return v.value.decode("utf-8", "replace") if isinstance(v.value, bytes) else str(v.value)


class DynamicCodeRules(ObfuscationRules):
    """Checks on code run or imported at run time."""

    _tracer: ProvenanceTracer | None = None

    @property
    def tracer(self) -> ProvenanceTracer:
        if self._tracer is None:
            self._tracer = ProvenanceTracer(self.tree, self.b, self.res)
        return self._tracer

    def _check_exec(self, node: ast.Call, q: str, obf: bool) -> None:
        """Rate running a string as code by where the string comes from.

        Decoded, assembled-to-hide or reflectively reached: critical. Downloaded: critical.
        Read from outside the program: high. A constant: medium, and the constant is analyzed.
        ``eval`` of a string the program builds from its own literals and numbers, naming
        nothing dangerous (see ``_provenance``): medium, so a person reviews it under the
        default policy. Anything else (``exec``/``compile`` of built code, unknown sources):
        high.
        """
        fn = q.split(".")[-1]
        if not node.args:
            return
        arg = node.args[0]
        vals = self.res.resolve(arg)
        consts = [v for v in vals if v.kind in ("str", "bytes", "code")]
        hidden = obf or self._mentions_decoder(arg) or any(v.decoded for v in consts)
        prov = None if hidden else self.tracer.trace(arg, node)
        if prov is not None and any(v.obf for v in consts):
            # folded from pieces: hiding, unless eval of a program-built string whose folded
            # value is harmless too ("2" + " * " + "3")
            clean = fn == "eval" and prov.built and not any(
                self.tracer.denied_names([_text(v)]) for v in consts)
            prov = prov if clean else None
        if prov is not None and prov.char_level:
            prov = None  # spelled out character by character from a literal alphabet
        if prov is None:
            self.add(node, "cb.dynamic-code.obfuscated", "dynamic-code", Level.CRITICAL,
                     f"runs code with {fn}() that was decoded, assembled or looked up "
                     "indirectly to hide it", cwe=95)
        elif prov.remote:
            self.add(node, "cb.dynamic-code.remote", "dynamic-code", Level.CRITICAL,
                     f"runs code downloaded from the network ({', '.join(prov.remote[:3])}) "
                     f"with {fn}()", cwe=494)
        elif prov.outside:
            self.add(node, "cb.dynamic-code.exec", "dynamic-code", Level.HIGH,
                     f"runs code read from outside the program ({', '.join(prov.outside[:3])}) "
                     f"with {fn}()", cwe=95)
        elif consts and prov.complete and not any(v.obf for v in consts):
            self.add(node, "cb.dynamic-code.constant", "dynamic-code", Level.MEDIUM,
                     f"runs a constant string with {fn}()", cwe=95, confidence="medium")
        elif fn == "eval" and prov.built:
            self.add(node, "cb.dynamic-code.program-built", "dynamic-code", Level.MEDIUM,
                     "evaluates an expression the program builds from its own literals and "
                     "numbers with eval(); its pieces name nothing dangerous", cwe=95,
                     confidence="medium")
        else:
            why = f"; its pieces can form {', '.join(prov.denied[:4])}" if prov.denied else ""
            self.add(node, "cb.dynamic-code.exec", "dynamic-code", Level.HIGH,
                     f"runs code built at run time with {fn}(){why}", cwe=95)
        if self.payload_depth < MAX_PAYLOAD_DEPTH:
            for v in consts:
                self._check_payload(node, _text(v), executed=True)

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
