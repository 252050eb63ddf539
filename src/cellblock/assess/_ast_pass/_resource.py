"""Resource exhaustion: fork and spawn bombs, memory and number bombs, unbounded loops,
ignored termination signals, recursion limits."""

from __future__ import annotations

import ast
from collections.abc import Sequence

from cellblock.assess._ast_pass._base import PassBase
from cellblock.assess._ast_pass._values import as_ref, is_true
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


class ResourceRules(PassBase):
    """Checks on code that exhausts CPU, memory, processes or ignores being stopped."""

    def visit_While(self, node: ast.While) -> None:
        infinite = is_true(node.test)
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
                         f"allocates a sequence of {n:,} elements or more (memory bomb)",
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
                         f"allocates {n:,} bytes (memory bomb)", cwe=400)
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
