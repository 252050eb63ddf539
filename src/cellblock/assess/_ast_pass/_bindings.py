"""The flow-insensitive symbol table: every binding of every name, collected in one walk."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field


@dataclass
class Bindings:
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


def _bind_target(b: Bindings, target: ast.expr, value: ast.expr | None) -> None:
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


LoopNode = ast.While | ast.For | ast.AsyncFor


def flatten(tree: ast.AST) -> list[tuple[ast.AST, tuple[ast.AST, ...]]]:
    """Every node once, with the loops that enclose it within its function. One walk shared by
    every check: walking the tree is most of the pass's cost."""
    out: list[tuple[ast.AST, tuple[ast.AST, ...]]] = []
    stack: list[tuple[ast.AST, tuple[ast.AST, ...]]] = [(tree, ())]
    while stack:
        node, loops = stack.pop()
        out.append((node, loops))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            inner: tuple[ast.AST, ...] = ()  # a loop around a definition does not repeat it
        elif isinstance(node, LoopNode):
            inner = (*loops, node)
        else:
            inner = loops
        for child in ast.iter_child_nodes(node):
            stack.append((child, inner))
    return out


def collect_bindings(nodes: list[tuple[ast.AST, tuple[ast.AST, ...]]]) -> Bindings:
    b = Bindings()
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
