"""Imports and capabilities: calls and references to what the capability table lists, stores
into the interpreter's machinery, the environment, deserialization and raw sockets."""

from __future__ import annotations

import ast
import re

from cellblock.assess import _capabilities as caps
from cellblock.assess._ast_pass._dynamic import DynamicCodeRules
from cellblock.assess._ast_pass._resource import ResourceRules
from cellblock.assess._ast_pass._values import as_ref, as_str, is_true
from cellblock.assess._interface import Level

_TMP_DIRS = ("/tmp", "/var/tmp")  # noqa: S108 - these are paths we compare with, not use
_SECRET_ENV = re.compile(r"(TOKEN|SECRET|PASSW|API_?KEY|PRIVATE|CREDENTIAL|AWS_|SESSION)", re.I)
_DANGEROUS_ENV = frozenset({"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PYTHONPATH",
                            "PYTHONSTARTUP", "PYTHONHOME", "PYTHONINSPECT", "PATH",
                            "BASH_ENV", "ENV", "PYTHONUSERBASE"})

_INERT_SUFFIXES = ("Error", "Exception", "Expired", "Warning")
_INERT_MEMBERS = frozenset({
    "PIPE", "STDOUT", "DEVNULL", "CompletedProcess", "codes", "exceptions",
    "__name__", "__file__", "__version__", "__doc__", "__all__",
})


def _inert_member(name: str) -> bool:
    """Whether a member of a module matched by a ``prefix.*`` capability is data, not an entry
    point: a known constant (``subprocess.PIPE``) or an exception class (``requests.HTTPError``).
    An explicit list: ALL-CAPS alone would also exempt ``ctypes.CDLL``."""
    return name in _INERT_MEMBERS or name.endswith(_INERT_SUFFIXES)


class CapabilityRules(DynamicCodeRules, ResourceRules):
    """Checks on what the code can reach: processes, network, files, FFI, the import system."""

    def _check_module(self) -> None:
        for mod, line in self.b.imported_modules:
            top = mod.split(".")[0]
            if top in ("ctypes", "_ctypes", "cffi", "_cffi_backend"):
                node = ast.Pass(lineno=line, col_offset=0)
                self.add(node, "cb.ffi.import", "ffi", Level.CRITICAL,
                         f"imports {mod}: native code can bypass every Python-level control",
                         cwe=111)

    def _check_reference(self, node: ast.expr) -> None:
        """A dangerous callable used as a value rather than called here.

        ``map(os.system, ...)``, ``f = os.system``, ``[os.popen]``, ``key=os.system``,
        ``Thread(target=os.system)``, ``staticmethod(os.system)``, ``partial(subprocess.run)``,
        ``return os.system``, a decorator: whoever receives the value can call it, so the
        reference counts as the capability at the level it has when called (raised one level
        when reached through an obfuscated lookup). The classes of ``isinstance``/``except`` and
        the constants and exception classes of a flagged module (``subprocess.PIPE``,
        ``requests.HTTPError``) are not references.
        """
        if id(node) in self.inert_ids:
            return
        for v in self.res.resolve(node):
            q = as_ref(v)
            if q is None:
                continue
            fn = q.rsplit(".", 1)[-1]
            if q in caps.EXEC_FUNCS:
                if v.obf:
                    self.add(node, "cb.dynamic-code.hidden-exec", "dynamic-code", Level.CRITICAL,
                             f"looks up {fn} by reflection", cwe=95)
                else:
                    self.add(node, "cb.dynamic-code.exec", "dynamic-code", Level.HIGH,
                             f"hands {fn}() on as a value: whoever calls it runs code built at "
                             "run time", cwe=95)
                continue
            if q in caps.IMPORT_FUNCS:
                self.add(node, "cb.dynamic-code.computed-import", "dynamic-code",
                         Level.CRITICAL if v.obf else Level.HIGH,
                         f"hands {fn}() on as a value: it imports modules named at run time",
                         cwe=829)
                continue
            cap = caps.lookup(q)
            if cap is None or (q not in caps.CAPABILITIES and _inert_member(fn)):
                continue
            self.add_cap(node, q, cap, obf=v.obf, ref=True)

    def _check_store(self, target: ast.Attribute | ast.Subscript) -> None:
        owners = self.res.resolve(target.value)
        for o in owners:
            q = as_ref(o)
            if q is None:
                continue
            if q in ("sys.modules", "sys.meta_path", "sys.path_hooks",
                     "sys.path_importer_cache") or q.startswith("sys.modules."):
                self.add(target, "cb.escape.import-system", "escape", Level.CRITICAL,
                         f"tampers with {q}, hijacking what later imports return", cwe=829)
            elif q in ("builtins", "<globals>"):
                if q == "builtins" or any(as_str(k) in ("__builtins__",)
                                          for k in self.res.resolve(getattr(target, "slice",
                                                                            None))):
                    self.add(target, "cb.escape.builtins-tamper", "escape", Level.CRITICAL,
                             "replaces built-in functions for all code in the interpreter",
                             cwe=693)
            elif q == "os.environ" and isinstance(target, ast.Subscript):
                keys = [as_str(k) for k in self.res.resolve(target.slice)]
                if any(k in _DANGEROUS_ENV for k in keys if k):
                    self.add(target, "cb.environment.loader-hijack", "environment", Level.HIGH,
                             f"sets {', '.join(k for k in keys if k)}, which changes what code "
                             "the dynamic loader or interpreter runs", cwe=427)
                else:
                    self.add(target, "cb.environment.write", "environment", Level.LOW,
                             "sets an environment variable", cwe=454, confidence="medium")
            elif isinstance(target, ast.Attribute) and (
                q in caps.SENSITIVE_MODULES and q not in ("sys", "io")
            ):
                self.add(target, "cb.escape.monkeypatch", "escape", Level.CRITICAL,
                         f"replaces {q}.{target.attr} for all code in the interpreter", cwe=693)

    _consumers: dict[int, ast.AST] | None = None  # id of an expression -> the call or loop using it

    def _check_environ_use(self, node: ast.Attribute) -> None:
        if not any(as_ref(v) == "os.environ" for v in self.res.resolve(node)):
            return
        if self._consumers is None:  # one walk for every use (a walk per use was quadratic)
            self._consumers = {}
            for n in ast.walk(self.tree):
                if isinstance(n, ast.Call):
                    for a in n.args:
                        self._consumers.setdefault(id(a), n)
                    if isinstance(n.func, ast.Attribute):
                        self._consumers.setdefault(id(n.func.value), n)
                elif isinstance(n, ast.For | ast.comprehension):
                    self._consumers.setdefault(id(n.iter), n)
        parent_call = self._consumers.get(id(node))
        if isinstance(parent_call, ast.For | ast.comprehension):
            self.add(node, "cb.environment.dump", "environment", Level.MEDIUM,
                     "reads every environment variable (secrets live there)", cwe=526)
            return
        if not isinstance(parent_call, ast.Call):
            return
        f = parent_call.func
        if isinstance(f, ast.Attribute) and f.value is node:
            if f.attr in ("copy", "items", "keys", "values", "__iter__"):
                self.add(node, "cb.environment.dump", "environment", Level.MEDIUM,
                         "reads every environment variable (secrets live there)", cwe=526)
            elif f.attr in ("update", "setdefault", "pop", "clear", "__setitem__", "popitem"):
                self.add(node, "cb.environment.write", "environment", Level.LOW,
                         "changes environment variables", cwe=454, confidence="medium")
        else:
            names = {as_ref(v) for v in self.res.resolve(f)}
            if names & {"builtins.dict", "builtins.print", "builtins.str", "builtins.repr",
                        "json.dumps", "json.dump", "builtins.list", "builtins.sorted"}:
                self.add(node, "cb.environment.dump", "environment", Level.MEDIUM,
                         "reads every environment variable (secrets live there)", cwe=526)

    def _check_getter_call(self, node: ast.Call, name: str) -> None:
        if name in caps.ESCAPE_ATTRS:
            self.add(node, "cb.escape.dunder-walk", "escape", Level.CRITICAL,
                     f"reaches {name} through operator.attrgetter/methodcaller", cwe=693)
        for arg in node.args[:1]:
            for v in self.res.resolve(arg):
                q = as_ref(v)
                if q is None:
                    continue
                full = f"{q}.{name}"
                self._check_call(node, full, True)

    def _check_call(self, node: ast.Call, q: str, obf: bool) -> None:
        args = node.args
        if q in caps.EXEC_FUNCS:
            self._check_exec(node, q, obf)
            return
        if q in caps.IMPORT_FUNCS:
            self._check_dynamic_import(node, q, obf)
            return
        if q in ("builtins.getattr", "builtins.setattr", "builtins.delattr",
                 "builtins.hasattr", "object.__getattribute__", "builtins.object.__getattribute__"):
            self._check_reflection(node, q)
            return
        if q in ("operator.methodcaller", "operator.attrgetter") and args:
            for v in self.res.resolve(args[0]):
                s = as_str(v)
                if s is None:
                    continue
                if s in caps.ESCAPE_ATTRS:
                    self.add(node, "cb.escape.dunder-walk", "escape", Level.CRITICAL,
                             f"reaches {s} through {q}", cwe=693)
                elif s in caps.SENSITIVE_NAMES or v.obf:
                    self.add(node, "cb.obfuscation.reflective-call", "obfuscation", Level.HIGH,
                             f"calls the method {s!r} indirectly through {q}", cwe=506)
            return
        if q in ("builtins.globals", "builtins.locals", "builtins.vars") and not args:
            return
        self._check_resource_call(node, q)
        if q in ("yaml.load", "yaml.load_all") and not any(
                "Safe" in ast.unparse(k.value) or "BaseLoader" in ast.unparse(k.value)
                for k in node.keywords) and not (len(args) > 1 and "Safe" in ast.unparse(args[1])):
            self.add(node, "cb.deserialization.yaml", "deserialization", Level.HIGH,
                     "loads YAML with a loader that can build arbitrary objects", cwe=502)
        if q in ("numpy.load",) and any(k.arg == "allow_pickle" and is_true(k.value)
                                        for k in node.keywords):
            self.add(node, "cb.deserialization.numpy-pickle", "deserialization", Level.HIGH,
                     "loads a NumPy file with pickles allowed", cwe=502)
        if q in ("sys.modules.pop", "sys.modules.update", "sys.modules.setdefault",
                 "sys.modules.clear", "sys.modules.__setitem__", "sys.modules.__delitem__",
                 "sys.meta_path.insert", "sys.meta_path.append", "sys.path_hooks.insert",
                 "sys.path_hooks.append", "sys.meta_path.clear", "sys.path_hooks.clear"):
            self.add(node, "cb.escape.import-system", "escape", Level.CRITICAL,
                     f"tampers with the import system ({q})", cwe=829)
            return
        if q in ("os.getenv", "os.environ.get", "os.environ.pop") and args:
            for v in self.res.resolve(args[0]):
                s = as_str(v)
                if s and len(s) < 256 and _SECRET_ENV.search(s):  # a name, not a megabyte
                    self.add(node, "cb.environment.secret", "environment", Level.MEDIUM,
                             f"reads the secret-looking environment variable {s!r}", cwe=526)
        if q == "builtins.open" and args and len(args) > 1:
            pass  # paths are checked as strings; open() in the cwd is ordinary
        cap = caps.lookup(q)
        if cap is None:
            return
        level: Level | None = None
        if cap.category == "filesystem" and args:
            for v in self.res.resolve(args[0]):
                s = as_str(v)
                if s and (s.startswith(("/", "~")) and not s.startswith(_TMP_DIRS)):
                    level = Level.HIGH
        if q in ("socket.socket", "_socket.socket") and args:
            kinds = {(as_ref(v) or "") for a in args[:3] for v in self.res.resolve(a)}
            kinds |= {(as_ref(v) or "") for k in node.keywords for v in self.res.resolve(k.value)}
            if any(k.endswith(("SOCK_RAW", "AF_PACKET", "AF_NETLINK")) for k in kinds):
                self.add(node, "cb.network.raw-socket", "network", Level.CRITICAL,
                         "opens a raw or packet socket (sniffing, spoofing, kernel access)",
                         cwe=250)
        self.add_cap(node, q, cap, obf, level)

