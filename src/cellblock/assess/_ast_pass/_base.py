"""The pass's state, reporting and traversal; the rule families are mixins over this base."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import Any, Literal

from cellblock.assess import _capabilities as caps
from cellblock.assess._ast_pass._bindings import collect_bindings, flatten
from cellblock.assess._ast_pass._resolve import Resolver
from cellblock.assess._ast_pass._values import (
    MAX_PAYLOAD,
    AnalysisDeadline,
    Budget,
    BudgetExhausted,
    as_ref,
    is_true,
)
from cellblock.assess._interface import Confidence, Finding, Level, Source

TOOL = "ast"
# words of code that does something; a decoded blob that has none is data, not a hidden program
_CODE_WORDS = re.compile(
    r"\b(?:import|exec|eval|compile|system|popen|subprocess|socket|open|getattr|setattr)\b"
    r"|__\w+__")
_BIG_LOOP = 10_000  # iterations above which a loop counts as unbounded


class PassBase:
    """One walk over one module (or one decoded payload)."""

    def __init__(
        self, source: Source, tree: ast.Module, payload_depth: int = 0,
        budget: Budget | None = None,
    ) -> None:
        self.source = source
        self.tree = tree
        self.nodes = flatten(tree)
        self.b = collect_bindings(self.nodes)
        self.res = Resolver(self.b, budget)
        self.findings: dict[tuple[str, int, int], Finding] = {}
        self.payload_depth = payload_depth
        self.payload_findings: dict[str, list[Finding]] = {}
        self.code_like: dict[str, bool] = {}  # decoded texts too long to read: look like code?
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
            self._visit(self._mark_inert, node)
        try:
            for node, loops in self.nodes:
                self.res.budget.tick()
                visitor = getattr(self, "visit_" + type(node).__name__, None)
                if visitor is not None:
                    self.loops = [self._loop_kind(lp) for lp in loops]
                    self._visit(visitor, node)
            self._visit(lambda _: self._check_module(), self.tree)
        except AnalysisDeadline:
            if self.payload_depth:
                raise  # the module's pass reports it
            # critical: the walk stopped, so what it did not reach could have been anything
            self.add(self.tree, "cb.obfuscation.analysis-timeout", "obfuscation",
                     Level.CRITICAL, "analyzing this code took longer than the AST pass's time "
                     "limit, which ordinary code never does; the rest of it was not read",
                     cwe=506)
            return list(self.findings.values())
        if self.payload_depth == 0 and self.res.budget.exhausted:
            # high, not low: a cheap prelude can spend the budget before the line that hides
            # something is folded, and some sinks only see through what they can fold
            self.add(self.tree, "cb.resource.analysis-budget", "resource", Level.HIGH,
                     "evaluating this code's constant expressions exceeded the analysis budget, "
                     "which ordinary code does not; values past that point are unknown",
                     cwe=400)
        return list(self.findings.values())

    def _visit(self, visitor: Callable[[Any], None], node: ast.AST) -> None:
        try:
            visitor(node)
        except RecursionError:  # this node is too deep to follow; the walk goes on past it
            self.add(node, "cb.obfuscation.analysis-depth", "obfuscation", Level.HIGH,
                     "nests expressions deeper than the AST pass can follow, which ordinary "
                     "code never does", cwe=506)

    def _loop_kind(self, node: ast.AST) -> Literal["infinite", "big", "bounded"]:
        cached = self._loop_kinds.get(id(node))
        if cached is not None:
            return cached
        kind: Literal["infinite", "big", "bounded"] = "bounded"
        if isinstance(node, ast.While):
            kind = "infinite" if is_true(node.test) else "bounded"
        it = node.iter if isinstance(node, ast.For | ast.AsyncFor) else None
        if isinstance(it, ast.Call):
            fq = {as_ref(v) for v in self.res.resolve(it.func)}
            if "itertools.count" in fq or ("itertools.repeat" in fq and len(it.args) < 2):
                kind = "infinite"
            elif "builtins.range" in fq and it.args:
                n = self.res.resolve_int(it.args[-1] if len(it.args) == 1 else it.args[1], {}, 0)
                if n is None or n >= _BIG_LOOP:
                    kind = "big"
        self._loop_kinds[id(node)] = kind
        return kind

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
            fq = {as_ref(v) for v in self.res.resolve(node.func)}
            if fq and fq <= {"builtins.isinstance", "builtins.issubclass"}:
                inert = node.args[1]
        if inert is not None:
            self.inert_ids.add(id(inert))
            if isinstance(inert, ast.Tuple):
                self.inert_ids.update(id(e) for e in inert.elts)

    def _check_module(self) -> None:
        """Rules over the whole module, applied after the walk (overridden by the mixins)."""

    def _check_payload(self, node: ast.AST, text: str, executed: bool) -> bool:
        """Analyze a decoded or literal string as Python. True when it had findings."""
        if len(text) > MAX_PAYLOAD:
            # parsing a megabyte of code costs seconds and half a gigabyte: not read, and so
            # not trusted when it runs, or when it looks like code (written to a file, imported)
            if executed:
                self.add(node, "cb.dynamic-code.unread-payload", "dynamic-code", Level.HIGH,
                         f"runs {len(text):,} characters of code, more than the AST pass reads "
                         f"({MAX_PAYLOAD:,})", cwe=95)
                return True
            if self._looks_like_code(text):
                self.add(node, "cb.obfuscation.unread-payload", "obfuscation", Level.HIGH,
                         f"decodes {len(text):,} characters that look like Python, more than "
                         f"the AST pass reads ({MAX_PAYLOAD:,})", cwe=506)
                return True
            return False
        inner = self.payload_findings.get(text)
        if inner is None:  # each distinct payload is parsed and analyzed once, however many sinks
            try:
                self.res.budget.materialize(len(text))  # parsing and walking it is paid for
            except BudgetExhausted:
                return False
            inner = self._analyze_payload(text)
            self.payload_findings[text] = inner
        found = False
        for f in inner:
            if f.severity < Level.MEDIUM and not executed:
                continue
            found = True
            lv = f.severity if not executed else max(f.severity, Level.MEDIUM)
            self.add(node, f.rule_id, f.category, lv.bump() if lv >= Level.MEDIUM else lv,
                     f"in a hidden payload: {f.message}", f.cwe, f.confidence)
        return found

    def _looks_like_code(self, text: str) -> bool:
        seen = self.code_like.get(text)
        if seen is None:  # one scan per distinct text, paid for
            try:
                self.res.budget.materialize(len(text))
            except BudgetExhausted:
                return True  # unknown: not trusted
            seen = self.code_like[text] = _CODE_WORDS.search(text) is not None
        return seen

    def _analyze_payload(self, text: str) -> list[Finding]:
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return []
        if not any(isinstance(n, ast.Call | ast.Import | ast.ImportFrom | ast.Attribute)
                   for n in ast.walk(tree)):
            return []
        inner_src = Source(text, "<payload>", tuple(text.splitlines()))
        return type(self)(inner_src, tree, self.payload_depth + 1, self.res.budget).run()
