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

Modules, in dependency order:

* ``_values``: the statically known values (:class:`Val`) and the analysis bounds;
* ``_bindings``: the symbol table, collected in one walk;
* ``_fold``: constant folding and the decoders evaluated on constants;
* ``_resolve``: name and alias resolution, expression to candidate values;
* ``_base``: the pass's state, reporting and traversal;
* rule families, mixins over the base: ``_obfuscation`` (strings, decoders, reflection),
  ``_dynamic`` (exec/eval/compile, computed imports), ``_resource`` (bombs, loops, signals),
  ``_capability`` (the capability table, stores, environment);
* ``_walk``: the visitor core, which checks each kind of node gets.
"""

from __future__ import annotations

import ast
import time

from cellblock.assess._ast_pass._base import TOOL
from cellblock.assess._ast_pass._values import Budget
from cellblock.assess._ast_pass._walk import Pass
from cellblock.assess._interface import Analyzer, AnalyzerResult, Source

__all__ = ["TOOL", "VERSION", "AstAnalyzer"]

VERSION = "1.0"


class AstAnalyzer(Analyzer):
    """The in-process AST capability pass."""

    name = TOOL

    def __init__(self, timeout_s: float | None = 10.0) -> None:
        # a backstop: the budgets bound the paths known to grow faster than the code; a program
        # that still keeps the pass busy this long is judged for it (analysis-timeout, critical)
        self.timeout_s = timeout_s

    def version(self) -> str:
        return VERSION

    def analyze(self, source: Source) -> AnalyzerResult:
        return self.analyze_tree(source, ast.parse(source.text, filename=source.filename))

    def analyze_tree(self, source: Source, tree: ast.Module) -> AnalyzerResult:
        # CPU time of this thread: a loaded machine or a busy service slows it, never trips it
        deadline = None if self.timeout_s is None else time.thread_time() + self.timeout_s
        p = Pass(source, tree, budget=Budget(deadline=deadline))
        findings = p.run()
        mods = tuple(sorted({m for m, _ in p.b.imported_modules}))
        return AnalyzerResult(TOOL, tuple(findings), VERSION, extra={"imports": mods})
