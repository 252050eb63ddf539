"""Where the code handed to ``exec``/``eval``/``compile`` comes from.

Generated code often evaluates a string it assembles from its own data: ``eval(" + ".join(terms))``
over numbers, ``eval(f"{a} {op} {b}")`` with ``op`` from a literal list. Such a string can only
contain what the program's own literals and numbers put there, and those are visible here. It is
*program-built* when every value that can flow into it (followed flow-insensitively through
names, ``append``/``extend``, loop and comprehension variables, local functions' returns and
their direct call sites' arguments) is

* a literal, a number, or a container of them;
* combined only by operators, f-strings, ``str.join``/``str.format``, ``str()``/``repr()``/
  ``format()`` and number functions (``math``, ``statistics``, ``random``, ``round``, ...);
* an element of a literal list, tuple or dict (never a character picked out of a string);

and the identifiers in its literal pieces name nothing dangerous, even when pieces are joined
(``"ev"`` + ``"al"``): no dunder, no ``import``, no name of the capability table, no module the
code imports, no builtin that reaches code, files or attributes by name.

Everything else is not program-built: a value read from outside the program (``input``,
``sys.stdin``, ``sys.argv``, the environment, files, other processes) or from the network, an
unknown call or attribute, a parameter whose callers are not all visible, a character-level
construction (string indexing, ``replace``, case changes), a decoder.
"""

from __future__ import annotations

import ast
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from cellblock.assess import _capabilities as caps
from cellblock.assess._ast_pass._bindings import Bindings
from cellblock.assess._ast_pass._resolve import Resolver
from cellblock.assess._ast_pass._values import as_ref

_MAX_NODES = 2_000  # closure size above which the string is not called program-built
_MAX_WALK_DEPTH = 100  # nesting of the walk (each level is a few Python frames)

#: Calls whose result carries only what their arguments carry (numbers, or the argument's text).
_PURE_FUNCS = frozenset({
    "builtins.str", "builtins.repr", "builtins.int", "builtins.float", "builtins.complex",
    "builtins.round", "builtins.abs", "builtins.min", "builtins.max", "builtins.sum",
    "builtins.len", "builtins.pow", "builtins.divmod", "builtins.bool", "builtins.ord",
    "builtins.list",
    "builtins.tuple", "builtins.sorted", "builtins.range", "builtins.enumerate", "builtins.zip",
    "builtins.map", "builtins.filter", "builtins.set", "builtins.dict", "builtins.any",
    "builtins.all", "random.choice", "random.choices", "random.sample", "random.randint",
    "random.randrange", "random.random", "random.uniform", "random.gauss", "random.shuffle",
    "fractions.Fraction", "decimal.Decimal",
})
#: Modules whose functions return numbers, or elements of their arguments (random.choice).
_NUMBER_MODULES = frozenset({"math", "cmath", "statistics", "random", "fractions", "decimal"})


def _numeric(q: str) -> bool:
    return q.split(".", 1)[0] in _NUMBER_MODULES
#: Calls that read their arguments without changing them.
_READS_ARGS = _PURE_FUNCS | {"builtins.print", "builtins.isinstance", "builtins.id",
                             "builtins.hash", "builtins.iter", "builtins.next", "builtins.eval"}
#: Methods that combine or pick whole pieces without cutting into them.
_PURE_METHODS = frozenset({"join", "format", "items", "keys", "values", "get", "pop", "copy"})

#: Values read from outside the program.
_OUTSIDE = frozenset({
    "builtins.input", "builtins.open", "sys.stdin", "sys.argv", "sys.orig_argv", "os.environ",
    "os.getenv", "os.environb", "os.read", "io.open", "codecs.open", "fileinput.input",
    "pathlib.Path", "os.popen", "subprocess.check_output", "subprocess.run",
    "subprocess.getoutput", "subprocess.Popen", "json.load", "pickle.load", "marshal.load",
    "shelve.open", "sqlite3.connect", "csv.reader", "csv.DictReader",
})

# what lets a constant evaluated elsewhere rebind or change the program's values
_REBINDS = re.compile(r":=|__|\b(globals|locals|vars|setattr|delattr|exec|eval|append|extend|"
                      r"insert|add|update|setdefault)\b")

#: Builtins an evaluated string could call to reach code, files, attributes or modules by name,
#: build strings, or change the program's objects.
_DENY_BUILTINS = frozenset({
    "import", "exec", "eval", "compile", "open", "input", "getattr", "setattr", "delattr",
    "hasattr", "globals", "locals", "vars", "dir", "breakpoint", "help", "exit", "quit",
    "memoryview", "type", "object", "super", "classmethod", "staticmethod", "property",
    "builtins", "license", "copyright", "credits", "print",
    # build strings or characters inside the evaluated code
    "chr", "bytes", "bytearray", "str", "repr", "ascii", "format", "join",
    # change the program's objects, so values reach other code behind this analysis
    "append", "extend", "insert", "update", "setdefault", "pop", "popitem", "remove", "clear",
    "add", "discard", "write", "writelines", "send", "throw",
    # call or read by a name held in data
    "operator", "methodcaller", "attrgetter", "itemgetter",
})
#: Identifiers that may not appear in a piece at all.
_DENY_NAMES = _DENY_BUILTINS | caps.SENSITIVE_NAMES
_IDENT_RUN = re.compile(r"\w+")  # digits too: "x" "2" joins into x2
# "%c" and "{:c}" turn numbers into characters
_CHAR_FORMAT = re.compile(
    r"%(\([^)]*\))?[-#0 +*\d.]*c"  # %c, %(name)c
    r"|\{[^{}]*:[^{}]*c\}"  # {:c}, {0:>3c}
    r"|\{[^{}]*:[^{}]*\{"  # a spec taken from an argument: {:{}}
    r"|%(\([^)]*\))?[-#0 +*\d.]*$"  # a %-directive left open, to be finished by the next piece
    r"|\{[^{}]*$"  # a replacement field left open
)
#: Modules whose names an evaluated string may use: no module-valued attributes to walk on.
_OPEN_MODULES = frozenset({"math", "cmath"})
_MUTATORS = frozenset({"append", "extend", "insert", "add", "update", "setdefault"})
#: Calls that let code rebind names or reach frames: with them, no data flow is trusted.
_REFLECTIVE = frozenset({
    "builtins.globals", "builtins.locals", "builtins.vars", "builtins.setattr",
    "builtins.delattr", "sys._getframe", "inspect.currentframe",
    "inspect.stack", "builtins.__import__", "importlib.import_module",
})
_REFLECTIVE_ATTRS = frozenset({"__dict__", "__setattr__", "__setitem__", "f_locals", "f_globals"})


@dataclass
class Provenance:
    """What flows into one argument."""

    complete: bool = True  # every source understood: literals, numbers, pure combinations
    built: bool = True  # complete, names nothing dangerous, no reflective rebinding in the code
    outside: list[str] = field(default_factory=list)  # sources outside the program
    remote: list[str] = field(default_factory=list)  # network sources
    pieces: list[str] = field(default_factory=list)  # the literal strings that flow in
    denied: list[str] = field(default_factory=list)  # dangerous names the pieces can form
    char_level: bool = False  # characters picked out of a literal string
    templates: list[str] = field(default_factory=list)  # pieces used as format templates


class ProvenanceTracer:
    """Follows an expression back to its sources, flow-insensitively, like the resolver."""

    def __init__(self, tree: ast.Module, bindings: Bindings, res: Resolver) -> None:
        self.b = bindings
        self.res = res
        self._index(tree)

    def _index(self, tree: ast.Module) -> None:
        # name -> iterables its loop/comprehension variables draw from, values appended to it
        self.iterables: dict[str, list[ast.expr]] = {}
        self.appended: dict[str, list[ast.expr]] = {}
        self.unknown_names: set[str] = set()  # bound by with/except/import/class/global
        self.calls: dict[str, list[ast.Call]] = {}  # local function name -> its call sites
        self.escaped_funcs: set[str] = set()  # local functions used other than by a call
        self.func_of_param: dict[str, list[tuple[str, int, ast.arguments]]] = {}
        call_funcs = set()
        for n in ast.walk(tree):
            if isinstance(n, ast.For | ast.AsyncFor | ast.comprehension):
                for t in ast.walk(n.target):
                    if isinstance(t, ast.Name):
                        self.iterables.setdefault(t.id, []).append(n.iter)
            elif isinstance(n, ast.Call):
                call_funcs.add(id(n.func))
                f = n.func
                if isinstance(f, ast.Name):
                    self.calls.setdefault(f.id, []).append(n)
                if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and \
                        f.attr in _MUTATORS:
                    self.appended.setdefault(f.value.id, []).extend(n.args)
                    self.appended[f.value.id].extend(k.value for k in n.keywords)
            elif isinstance(n, ast.Assign):
                for t in n.targets:  # d[k] = v stores v into d
                    if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name):
                        self.appended.setdefault(t.value.id, []).append(n.value)
            elif isinstance(n, ast.withitem) and n.optional_vars is not None:
                self.unknown_names.update(
                    t.id for t in ast.walk(n.optional_vars) if isinstance(t, ast.Name))
            elif isinstance(n, ast.Global | ast.Nonlocal):
                self.unknown_names.update(n.names)
            elif isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                name = n.name if not isinstance(n, ast.Lambda) else "<lambda>"
                if not isinstance(n, ast.Lambda) and n.decorator_list:
                    self.escaped_funcs.add(n.name)  # the decorator may call it with anything
                a = n.args
                positional = [*a.posonlyargs, *a.args]
                for i, p in enumerate(positional):
                    self.func_of_param.setdefault(p.arg, []).append((name, i, a))
                for p in a.kwonlyargs:
                    self.func_of_param.setdefault(p.arg, []).append((name, -1, a))
                for rest in (a.vararg, a.kwarg):
                    if rest is not None:
                        self.unknown_names.add(rest.arg)
        self._names: frozenset[str] | None = None
        self.reflective = False  # the code can rebind names behind our back
        self.code_runs: list[tuple[ast.Call, str]] = []  # every exec/eval call
        self._rebinding_runs: list[ast.Call] | None = None
        for n in ast.walk(tree):
            if isinstance(n, ast.Name) and n.id in self.b.functions and id(n) not in call_funcs \
                    and isinstance(n.ctx, ast.Load):
                self.escaped_funcs.add(n.id)
            elif isinstance(n, ast.Attribute) and id(n) not in call_funcs and isinstance(
                    n.value, ast.Name) and n.attr in _MUTATORS:
                self.unknown_names.add(n.value.id)  # add = parts.append; add(x)
            elif isinstance(n, ast.ExceptHandler) and n.name:
                self.unknown_names.add(n.name)
            elif (isinstance(n, ast.Attribute) and n.attr in _REFLECTIVE_ATTRS) or (
                    isinstance(n, ast.Call) and any(as_ref(v) in _REFLECTIVE
                                                    for v in self.res.resolve(n.func))):
                self.reflective = True
            if isinstance(n, ast.Call) and n.args:
                self.code_runs.extend((n, q) for v in self.res.resolve(n.func)
                                      if (q := as_ref(v)) in ("builtins.exec", "builtins.eval"))
        self._index_aliases(tree)

    def _index_aliases(self, tree: ast.Module) -> None:
        """Group names that can share one mutable container (``ys = xs``, ``for row in table``,
        ``f(xs)`` into a parameter), so what is appended through one name counts for all, and a
        container handed to code that may change it (``list.append(xs, v)``, ``json.dump(xs)``,
        ``xs.__iadd__(v)``) is no longer program-built."""
        root: dict[str, str] = {}

        def find(x: str) -> str:
            while root.get(x, x) != x:
                root[x] = root.get(root[x], root[x])
                x = root[x]
            return x

        def union(a: str, others: set[str]) -> None:
            for o in others:
                ra, ro = find(a), find(o)
                if ra != ro:
                    root[ro] = ra

        variables = {*self.b.values, *self.iterables, *self.func_of_param, *self.appended,
                     *self.unknown_names} - set(self.b.imports) - set(self.b.functions)

        def names(e: ast.AST | None) -> set[str]:
            """The variables in ``e`` (not builtins, imports or functions: str(a), str(b) must
            not join a and b)."""
            return {m.id for m in ast.walk(e) if isinstance(m, ast.Name)
                    and m.id in variables} if e else set()

        containers: set[str] = set(self.appended)
        mutated: set[str] = set()
        params = {fn.name: [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
                  for fns in self.b.functions.values() for fn in fns
                  if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)}
        for n in ast.walk(tree):
            if isinstance(n, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
                targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                value = n.value
                for tn in set().union(*(names(x) for x in targets)):
                    union(tn, names(value))
                    if isinstance(value, ast.List | ast.Dict | ast.Set | ast.ListComp
                                  | ast.DictComp | ast.SetComp) or (
                            isinstance(value, ast.Call) and not self._pure_call(value)):
                        containers.add(tn)
            elif isinstance(n, ast.For | ast.AsyncFor | ast.comprehension):
                for tn in names(n.target):
                    union(tn, names(n.iter))
            elif isinstance(n, ast.Call):
                f = n.func
                args = [*n.args, *(k.value for k in n.keywords)]
                if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                    if f.attr in _MUTATORS:
                        union(f.value.id, set().union(*(names(a) for a in args)))
                        continue
                    if f.attr.startswith("__"):
                        mutated.add(f.value.id)  # xs.__iadd__(v), d.__setitem__(k, v)
                if isinstance(f, ast.Name) and f.id in params:
                    for pname, a in zip(params[f.id], n.args, strict=False):
                        union(pname, names(a))
                    continue
                if not self._pure_call(n):
                    for a in args:
                        mutated.update(names(a))
        self._alias_root = find
        self._class_appended: dict[str, list[ast.expr]] = {}
        for name, vals in self.appended.items():
            self._class_appended.setdefault(find(name), []).extend(vals)
        self._changed_containers = {find(m) for m in mutated} & {find(c) for c in containers}

    def _pure_call(self, call: ast.Call) -> bool:
        """Whether a call only reads its arguments."""
        quals = {as_ref(v) for v in self.res.resolve(call.func)}
        if quals and None not in quals:
            return all(q in _READS_ARGS or _numeric(q) for q in quals if q is not None)
        return isinstance(call.func, ast.Attribute) and call.func.attr in _PURE_METHODS

    # -- tracing -----------------------------------------------------------------------------
    def _walk_from(self, expr: ast.expr, p: Provenance) -> None:
        self._budget = _MAX_NODES
        self._depth = 0
        self._seen: set[int] = set()
        self._seen_names: set[str] = set()
        self._walk(expr, p)

    def trace(self, expr: ast.expr, call: ast.Call | None = None) -> Provenance:
        """The sources of ``expr``, the first argument of ``call``."""
        p = Provenance()
        self._walk_from(expr, p)
        if call is not None:
            # the namespaces handed to eval/exec must hold plain values too: eval("f(0)",
            # {"f": open}) calls whatever the dict maps f to
            spaces = Provenance()
            for a in (*call.args[1:3], *(k.value for k in call.keywords)):
                self._walk_from(a, spaces)
            p.outside += spaces.outside
            p.remote += spaces.remote
            p.built = p.built and spaces.built
        p.complete = p.built and not self.reflective and not self._other_runs_rebind(call)
        if p.complete:
            p.denied = self.denied_names(p.pieces, p.templates)
        p.built = p.complete and not p.denied
        return p

    def denied_names(self, pieces: Sequence[str], templates: Sequence[str] = ()) -> list[str]:
        return _denied_names(pieces, self._module_names(), templates)

    def _other_runs_rebind(self, call: ast.Call | None) -> bool:
        """Whether another exec, or an eval of a constant that assigns or mutates, can change
        values behind this analysis (exec("x = input()") then eval(x))."""
        if self._rebinding_runs is None:  # found once: per trace it was quadratic in evals
            runs = {id(other): other for other, q in self.code_runs
                    if q == "builtins.exec" or self._rebinds(other)}
            self._rebinding_runs = list(runs.values())
        return any(other is not call for other in self._rebinding_runs[:2])

    def _rebinds(self, run: ast.Call) -> bool:
        for v in self.res.resolve(run.args[0]):
            if isinstance(v.value, str | bytes) and _REBINDS.search(
                    v.value if isinstance(v.value, str) else v.value.decode("latin-1")):
                return True
        return False

    def _module_names(self) -> frozenset[str]:
        """Names the module binds to imports or to functions other than pure ones (``g = getattr``,
        ``f = os.system``): an evaluated string sees them."""
        if self._names is None:
            out = {name for name, quals in self.b.imports.items()
                   if not all(q.split(".", 1)[0] in _OPEN_MODULES for q in quals)}
            for name in self.b.values:
                for v in self.res.resolve_name(name, {}, 0):
                    q = as_ref(v)
                    if q is not None and q not in _PURE_FUNCS and \
                            q.split(".", 1)[0] not in _OPEN_MODULES and \
                            not q.startswith("<local>."):
                        out.add(name)
            self._names = frozenset(out)
        return self._names

    def _source(self, q: str, p: Provenance) -> bool:
        """Record ``q`` if it reads from outside the program; True when it did."""
        cap = caps.lookup(q)
        if cap is not None and cap.category == "network":
            p.remote.append(q)
            return True
        if q in _OUTSIDE or q.startswith(("sys.stdin.", "os.environ.", "pathlib.Path.")) or (
                cap is not None and cap.category in ("filesystem", "process")):
            p.outside.append(q)
            return True
        return False

    def _walk(self, node: ast.AST | None, p: Provenance) -> None:
        if node is None:
            return
        self._budget -= 1
        if self._budget < 0 or self._depth >= _MAX_WALK_DEPTH:
            p.built = False  # too large to follow: not program-built
            return
        if id(node) in self._seen:
            return
        self._seen.add(id(node))
        self._depth += 1
        try:
            self._walk_node(node, p)
        finally:
            self._depth -= 1

    def _walk_node(self, node: ast.AST, p: Provenance) -> None:
        w = self._walk
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                p.pieces.append(node.value)
            elif isinstance(node.value, bytes):
                p.pieces.append(node.value.decode("latin-1"))
        elif isinstance(node, ast.JoinedStr | ast.BoolOp):
            for c in node.values:
                w(c, p)
        elif isinstance(node, ast.List | ast.Tuple | ast.Set):
            for c in node.elts:
                w(c, p)
        elif isinstance(node, ast.FormattedValue):
            w(node.value, p)
            if node.format_spec is not None and any(
                    isinstance(c, ast.FormattedValue) for c in ast.walk(node.format_spec)):
                p.built = False  # f"{x:{spec}}": the spec is data, maybe "c"
            if node.format_spec is not None:
                spec = "".join(c.value for c in ast.walk(node.format_spec) if isinstance(
                    c, ast.Constant) and isinstance(c.value, str))
                p.templates.append("{:" + spec + "}")  # checked for "c", like "{:c}".format
                w(node.format_spec, p)
        elif isinstance(node, ast.Dict):
            for k in node.keys:
                w(k, p)
            for v in node.values:
                w(v, p)
        elif isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Mod):
                self._walk_template(node.left, p)
            else:
                w(node.left, p)
            w(node.right, p)
        elif isinstance(node, ast.UnaryOp):
            w(node.operand, p)
        elif isinstance(node, ast.IfExp):
            w(node.body, p)
            w(node.orelse, p)  # the test only picks a branch
        elif isinstance(node, ast.Compare):
            pass  # a bool
        elif isinstance(node, ast.Starred | ast.NamedExpr):
            w(node.value, p)
        elif isinstance(node, ast.ListComp | ast.GeneratorExp | ast.SetComp):
            e = node.elt
            if isinstance(e, ast.Subscript) and not isinstance(e.slice, ast.Slice) and any(
                    v.kind == "str" for v in self.res.resolve(e.value)):
                p.char_level = True  # letters[i] for i in ...: spelled out character by character
            w(node.elt, p)
            for g in node.generators:
                w(g.iter, p)
        elif isinstance(node, ast.DictComp):
            w(node.key, p)
            w(node.value, p)
            for g in node.generators:
                w(g.iter, p)
        elif isinstance(node, ast.Name):
            self._name(node.id, p)
        elif isinstance(node, ast.Subscript):
            self._subscript(node, p)
        elif isinstance(node, ast.Attribute):
            self._attribute(node, p)
        elif isinstance(node, ast.Call):
            self._call(node, p)
        else:
            p.built = False

    def _walk_template(self, node: ast.expr, p: Provenance) -> None:
        """Walk a format template afresh, keeping its pieces apart: "%c" and "{:c}" there turn
        numbers into characters."""
        saved = self._seen, self._seen_names
        self._seen, self._seen_names = set(), set()
        sub = Provenance()
        self._walk(node, sub)
        self._seen, self._seen_names = saved
        p.built = p.built and sub.built
        p.char_level = p.char_level or sub.char_level
        p.outside += sub.outside
        p.remote += sub.remote
        p.pieces += sub.pieces
        p.templates += sub.pieces + sub.templates

    def _name(self, name: str, p: Provenance) -> None:
        if name in self._seen_names:
            return
        self._seen_names.add(name)
        group = self._alias_root(name)
        sources: list[ast.expr] = [*self.b.values.get(name, ()), *self.iterables.get(name, ()),
                                   *self._class_appended.get(group, ())]
        if group in self._changed_containers:
            p.built = False
        for q in self.b.imports.get(name, ()):
            if not self._source(q, p) and not _numeric(q):
                p.built = False
        params = self.func_of_param.get(name, ())
        for func, index, args in params:
            self._parameter(name, func, index, args, p)
        for s in sources:
            self._walk(s, p)
        if name in self.unknown_names:
            p.built = False
        elif not sources and not params and not self.b.imports.get(name):
            # a builtin or local function handed on as a value: map(str, xs)
            refs = [as_ref(v) for v in self.res.resolve_name(name, {}, 0)]
            if not refs or not all(r in _PURE_FUNCS for r in refs):
                p.built = False

    def _parameter(self, name: str, func: str, index: int, args: ast.arguments,
                   p: Provenance) -> None:
        """A parameter carries what its callers pass: all callers must be visible calls."""
        if func == "<lambda>" or func in self.escaped_funcs or func not in self.calls:
            p.built = False
            return
        defaults = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
        for d in defaults:
            self._walk(d, p)
        for call in self.calls[func]:
            if any(isinstance(a, ast.Starred) for a in call.args) or any(
                    k.arg is None for k in call.keywords):
                p.built = False
                continue
            if 0 <= index < len(call.args):
                self._walk(call.args[index], p)
            for k in call.keywords:
                if k.arg == name:
                    self._walk(k.value, p)

    def _subscript(self, node: ast.Subscript, p: Provenance) -> None:
        """An element of a literal container is whole; a character of a string is not."""
        if isinstance(node.slice, ast.Slice) or not self._is_container(node.value, set()):
            p.built = False
        self._walk(node.value, p)

    def _is_container(self, node: ast.expr, seen: set[str]) -> bool:
        if isinstance(node, ast.List | ast.Tuple | ast.Dict | ast.ListComp | ast.DictComp):
            return True
        if isinstance(node, ast.Call):
            return any(as_ref(v) in ("builtins.list", "builtins.tuple", "builtins.dict",
                                     "builtins.sorted", "builtins.zip", "builtins.enumerate")
                       for v in self.res.resolve(node.func))
        if isinstance(node, ast.Subscript):  # a row of a table
            return self._is_container(node.value, seen)
        if isinstance(node, ast.Name) and node.id not in seen:
            seen.add(node.id)
            values = self.b.values.get(node.id, ())
            rows = self.iterables.get(node.id, ())
            return bool(values or rows) and all(self._is_container(v, seen) for v in values) and \
                all(self._is_rows(r, seen) for r in rows)
        return False

    def _is_rows(self, node: ast.expr, seen: set[str]) -> bool:
        """Whether iterating ``node`` yields containers (a loop over a table of rows)."""
        if isinstance(node, ast.List | ast.Tuple):
            return all(self._is_container(e, seen) for e in node.elts)
        # (key, value) pairs
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
            node.func.attr == "items"

    def _attribute(self, node: ast.Attribute, p: Provenance) -> None:
        for v in self.res.resolve(node):
            q = as_ref(v)
            if q is not None and (self._source(q, p) or _numeric(q)):
                return
        p.built = False
        self._walk(node.value, p)  # still look for outside sources underneath

    def _call(self, node: ast.Call, p: Provenance) -> None:
        quals = {as_ref(v) for v in self.res.resolve(node.func)} - {None}
        pure = bool(quals)
        for q in quals:
            assert q is not None
            if self._source(q, p):
                pure = False
            elif q.startswith("<local>."):
                for fd in self.b.functions.get(q.split(".", 1)[1], ()):
                    for r in ast.walk(fd):
                        if isinstance(r, ast.Return | ast.Yield | ast.YieldFrom) and \
                                r.value is not None:
                            self._walk(r.value, p)
            elif q not in _PURE_FUNCS and not _numeric(q):
                pure = False
        if not quals and isinstance(node.func, ast.Attribute):
            # a method: "sep".join(parts), "{} + {}".format(a, b); others cut or read
            pure = node.func.attr in _PURE_METHODS
            if node.func.attr == "format":
                self._walk_template(node.func.value, p)
            else:
                self._walk(node.func.value, p)
        if not pure:
            p.built = False
        for a in node.args:
            self._walk(a, p)
        for k in node.keywords:
            self._walk(k.value, p)


def _denied_names(pieces: Sequence[str], module_names: frozenset[str],
                  templates: Sequence[str]) -> list[str]:
    """What in the literal pieces lets the evaluated code do more than compute.

    Dangerous identifiers, also those formed by joining pieces: an identifier that touches the
    end of one piece can continue into the next, so ``"ev"`` and ``"al"`` make ``eval``. String
    quotes (the evaluated code could assemble any name inside its own literals) and ``:=`` (it
    could rebind the program's names behind this analysis) count too.
    """
    deny = _DENY_NAMES | module_names
    # joins are checked for what the evaluated code can reach: builtins, the module's own
    # bindings and dunders (a module name like gc is reachable only when the code binds it)
    reachable = _DENY_BUILTINS | module_names | {"__"}
    found: set[str] = set()
    heads: set[str] = set()  # identifiers open at the end of their piece
    tails: set[str] = set()  # identifiers open at the start of their piece
    for raw in pieces:
        piece = unicodedata.normalize("NFKC", raw)  # Python reads fullwidth letters as ASCII ones
        if any(c in piece for c in "'\"`\\"):
            found.add("string quotes")
        if ":=" in piece:
            found.add(":=")
        for m in _IDENT_RUN.finditer(piece):
            ident = m.group()
            if ident in deny or ident.startswith("_"):  # private: random._os
                found.add(ident)
            if m.end() == len(piece):
                heads.add(ident)
            if m.start() == 0:
                tails.add(ident)
    if any(_CHAR_FORMAT.search(unicodedata.normalize("NFKC", s)) for s in templates):
        found.add("character formatting")
    if heads and tails:
        # the ends of heads and starts of tails, as long as the longest name: set lookups
        # instead of names x heads x positions string comparisons
        longest = max(map(len, reachable))
        head_ends = {h[-k:] for h in heads for k in range(1, min(len(h), longest) + 1)}
        tail_starts = {t[:k] for t in tails for k in range(1, min(len(t), longest) + 1)}
        wholes = heads & tails
        found.update(name for name in reachable
                     if _joinable(name, head_ends, tail_starts, wholes))
    return sorted(found)


def _joinable(name: str, head_ends: set[str], tail_starts: set[str], wholes: set[str]) -> bool:
    """Whether ``name`` can be a suffix of a head, then whole pieces, then a prefix of a tail
    (a whole piece is both a head and a tail), in two parts or more."""
    n = len(name)
    reach = [name[:i] in head_ends for i in range(n)]  # name[:i] built
    reach[0] = False
    for i in range(1, n):
        if not reach[i]:
            continue
        if name[i:] in tail_starts:
            return True
        for j in range(i + 1, n):
            if name[i:j] in wholes:
                reach[j] = True
    return False
