"""Resource exhaustion: fork and spawn bombs, memory and number bombs, unbounded loops,
ignored termination signals, recursion limits."""

from __future__ import annotations

import ast
from collections.abc import Sequence

from cellblock.assess._ast_pass._base import PassBase
from cellblock.assess._ast_pass._values import HUGE, as_ref, is_true
from cellblock.assess._interface import Level

_BIG_ALLOC = 10**8  # elements or bytes above which an allocation is a bomb

_FORK_FUNCS = frozenset({"os.fork", "os.forkpty", "pty.fork", "posix.fork"})
_SPAWN_IN_LOOP = frozenset({
    "threading.Thread", "multiprocessing.Process", "subprocess.Popen", "subprocess.run",
    "subprocess.call", "os.system", "os.popen", "_thread.start_new_thread",
    "_thread.start_new", "threading.Timer", "asyncio.create_task",
})
_KILL_SIGNALS = frozenset({"SIGTERM", "SIGINT", "SIGXCPU", "SIGALRM", "SIGHUP", "SIGQUIT",
                           "SIGVTALRM", "SIGPROF", "SIGCHLD", "SIGXFSZ"})


_ESCAPES, _GROWS = 1, 2  # facts about a subtree: it can return/raise/yield; it grows data
_GROWING_METHODS = frozenset({"append", "extend", "write", "add", "insert"})


def _own_facts(n: ast.AST) -> int:
    if isinstance(n, ast.Return | ast.Raise | ast.Yield | ast.YieldFrom):
        return _ESCAPES
    if isinstance(n, ast.AugAssign) or (
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
        and n.func.attr in _GROWING_METHODS
    ):
        return _GROWS
    return 0


def subtree_facts(tree: ast.AST) -> dict[int, int]:
    """The facts of every node's subtree, in one pass (walking each nested loop's subtree again
    made a hundred nested ``while 1:`` cost seconds)."""
    order: list[ast.AST] = []
    stack = [tree]
    while stack:
        n = stack.pop()
        order.append(n)
        stack.extend(ast.iter_child_nodes(n))
    facts: dict[int, int] = {}
    for n in reversed(order):  # every node after its descendants
        bits = _own_facts(n)
        for child in ast.iter_child_nodes(n):
            bits |= facts[id(child)]
        facts[id(n)] = bits
    return facts


def _has_exit(body: Sequence[ast.stmt], facts: dict[int, int]) -> bool:
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
            if facts[id(n)] & _ESCAPES:
                return True
            stack.extend(n.orelse)
            continue
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        stack.extend(ast.iter_child_nodes(n))
    return False


class ResourceRules(PassBase):
    """Checks on code that exhausts CPU, memory, processes or ignores being stopped."""

    _facts: dict[int, int] | None = None

    def visit_While(self, node: ast.While) -> None:
        infinite = is_true(node.test)
        if self._facts is None:
            self._facts = subtree_facts(self.tree)
        if infinite and not _has_exit(node.body, self._facts):
            self.add(node, "cb.resource.unbounded-loop", "resource", Level.MEDIUM,
                     "loops forever with no way out (break, return or exit)", cwe=835,
                     confidence="medium")
            if self._facts[id(node)] & _GROWS:
                self.add(node, "cb.resource.memory-growth", "resource", Level.HIGH,
                         "grows data without bound inside an endless loop (memory bomb)",
                         cwe=400)

    def _check_alloc(self, node: ast.BinOp) -> None:
        sides = (node.left, node.right)
        for a, c in (sides, sides[::-1]):
            n = self.res.resolve_int(c, {}, 0)
            if n is None or n < _BIG_ALLOC:
                continue
            if isinstance(a, ast.List | ast.Tuple) or any(
                v.kind in ("str", "bytes", "seq") for v in self.res.resolve(a)
            ):
                self.add(node, "cb.resource.huge-allocation", "resource", Level.HIGH,
                         f"allocates a sequence of {_count(n)} elements or more (memory bomb)",
                         cwe=400)

    def _check_resource_call(self, node: ast.Call, q: str) -> None:
        args = node.args
        if q in _FORK_FUNCS and self.loops:
            self.add(node, "cb.resource.fork-bomb", "resource", Level.CRITICAL,
                     "forks inside a loop (fork bomb)", cwe=400)
        if (q in _SPAWN_IN_LOOP or q in _FORK_FUNCS) and any(
                k in ("infinite", "big") for k in self.loops):
            self.add(node, "cb.resource.spawn-bomb", "resource", Level.HIGH,
                     f"starts threads or processes in an unbounded loop ({q})", cwe=400)
        if q in ("builtins.bytearray", "builtins.bytes") and args:
            n = self.res.resolve_int(args[0], {}, 0)
            if n is not None and n >= _BIG_ALLOC:
                self.add(node, "cb.resource.huge-allocation", "resource", Level.HIGH,
                         f"allocates {_count(n)} bytes (memory bomb)", cwe=400)
        if q == "sys.setrecursionlimit" and args:
            n = self.res.resolve_int(args[0], {}, 0)
            if n is None or n > 100_000:
                self.add(node, "cb.resource.recursion-limit", "resource", Level.MEDIUM,
                         "raises the recursion limit far enough to crash the interpreter",
                         cwe=674)
        if q == "signal.signal" and len(args) >= 2:
            sigs = {(as_ref(v) or "").rsplit(".", 1)[-1] for v in self.res.resolve(args[0])}
            handler = {as_ref(v) for v in self.res.resolve(args[1])}
            if sigs & _KILL_SIGNALS and ("signal.SIG_IGN" in handler or not handler or any(
                    h and h.startswith("<local>") for h in handler)) and (
                    "signal.SIG_IGN" in handler or sigs & {"SIGTERM", "SIGXCPU", "SIGALRM"}):
                self.add(node, "cb.resource.ignore-signals", "resource", Level.HIGH,
                         "ignores or intercepts the signals used to stop runaway code", cwe=400)


def _count(n: int) -> str:
    """``n`` for a message; Python refuses to print integers of more than 4,300 digits."""
    return f"{n:,}" if n < HUGE else "an enormous number of"
