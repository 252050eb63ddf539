"""The capability table of the AST pass: which resolved names mean what.

Keys are fully qualified names after alias resolution (``import os as o; o.system`` is
``os.system``). A key ending in ``.*`` matches every attribute below that prefix. Levels here are
defaults: the policy overrides them by rule id or category through ``AssessConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cellblock.assess._interface import Confidence, Level


@dataclass(frozen=True)
class Capability:
    rule_id: str
    category: str
    level: Level
    cwe: int | None
    message: str
    confidence: Confidence = "high"


C, H, M, L = Level.CRITICAL, Level.HIGH, Level.MEDIUM, Level.LOW


def _cap(
    rule: str, cat: str, lv: Level, cwe: int | None, msg: str, conf: Confidence = "high"
) -> Capability:
    return Capability(rule, cat, lv, cwe, msg, conf)


_PROC = _cap("cb.process.spawn", "process", H, 78, "starts a process or a shell")
_PROC_SIG = _cap("cb.process.signal", "process", H, None, "sends a signal to another process")
_FORK = _cap("cb.process.fork", "process", H, None, "forks the interpreter")
_NET = _cap("cb.network.client", "network", H, 918, "opens a network connection")
_NET_SERVER = _cap("cb.network.server", "network", H, 200, "listens for network connections")
_NET_DNS = _cap("cb.network.dns", "network", M, 200,
                "resolves host names (usable for exfiltration)")
_FFI = _cap("cb.ffi.native", "ffi", C, 111, "calls native code through an FFI")
_DESER = _cap("cb.deserialization.unsafe", "deserialization", H, 502,
              "deserializes data in a format that can execute code")
_DYN_IMPORT = _cap("cb.dynamic-code.loader", "dynamic-code", H, 94,
                   "loads or runs code from a file or module at run time")
_CODE_OBJ = _cap("cb.escape.code-object", "escape", C, 94,
                 "builds code or function objects by hand (bytecode crafting)")
_INTRO = _cap("cb.introspection.frames", "introspection", M, None,
              "reads interpreter frames or the call stack")
_HEAP = _cap("cb.introspection.heap", "introspection", H, None,
             "walks the object heap (a classic way to reach objects a sandbox hides)")
_TRACE = _cap("cb.introspection.hooks", "introspection", H, None,
              "installs or inspects interpreter trace, profile or audit hooks")
_PRIV = _cap("cb.environment.privileges", "environment", H, 250,
             "changes process privileges or identity")
_NS = _cap("cb.escape.namespace", "escape", C, 250,
           "changes root directory or kernel namespaces")
_RLIMIT = _cap("cb.resource.rlimit", "resource", M, 400, "changes resource limits")
_ENV_WRITE = _cap("cb.environment.write", "environment", M, 454,
                  "changes environment variables of the process")
_SITE = _cap("cb.environment.site", "environment", H, 427,
             "locates or extends site-packages (used to plant .pth or sitecustomize files)")
_FS_DESTROY = _cap("cb.filesystem.destructive", "filesystem", L, 73,
                   "deletes, moves or relinks files", "medium")
_FS_PERM = _cap("cb.filesystem.permissions", "filesystem", L, 732,
                "changes file permissions or ownership", "medium")
_FS_SPECIAL = _cap("cb.filesystem.special", "filesystem", H, None,
                   "creates device nodes or FIFOs")
_WEAK_HASH = _cap("cb.crypto-weakness.hash", "crypto-weakness", L, 327,
                  "uses a weak hash function", "medium")
_TERMINAL = _cap("cb.process.terminal", "process", H, 78, "spawns a pseudo-terminal")
_MMAP = _cap("cb.ffi.mmap", "ffi", L, None, "maps memory directly", "low")
_INTERACT = _cap("cb.dynamic-code.interactive", "dynamic-code", H, 94,
                 "opens an interactive interpreter or debugger")
_MP = _cap("cb.process.multiprocessing", "process", L, None, "starts worker processes", "medium")

#: Qualified name (or prefix with ``.*``) -> capability.
CAPABILITIES: dict[str, Capability] = {
    # process
    **{f"os.{n}": _PROC for n in (
        "system", "popen", "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp",
        "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
        "spawnvpe", "posix_spawn", "posix_spawnp", "startfile")},
    **{f"posix.{n}": _PROC for n in ("system", "execv", "execve", "posix_spawn", "fork")},
    "os.fork": _FORK, "os.forkpty": _FORK, "os.register_at_fork": _FORK,
    "os.kill": _PROC_SIG, "os.killpg": _PROC_SIG, "signal.pthread_kill": _PROC_SIG,
    "os.pidfd_open": _PROC_SIG,
    "subprocess.*": _PROC, "_posixsubprocess.*": _PROC, "commands.*": _PROC,
    "platform.popen": _PROC, "pty.spawn": _TERMINAL, "pty.fork": _TERMINAL,
    "asyncio.create_subprocess_exec": _PROC, "asyncio.create_subprocess_shell": _PROC,
    "multiprocessing.Process": _MP, "multiprocessing.Pool": _MP,
    "concurrent.futures.ProcessPoolExecutor": _MP,
    "paramiko.*": _PROC, "pexpect.*": _PROC, "sh.*": _PROC, "plumbum.*": _PROC,
    # network
    "socket.socket": _NET, "socket.create_connection": _NET, "socket.fromfd": _NET,
    "socket.create_server": _NET_SERVER, "socket.SocketType": _NET,
    "socket.gethostbyname": _NET_DNS, "socket.gethostbyname_ex": _NET_DNS,
    "socket.getaddrinfo": _NET_DNS, "socket.gethostbyaddr": _NET_DNS,
    "_socket.*": _NET,
    "urllib.request.urlopen": _NET, "urllib.request.urlretrieve": _NET,
    "urllib.request.build_opener": _NET, "urllib.request.Request": _NET,
    "urllib.request.OpenerDirector": _NET, "urllib.urlopen": _NET, "urllib2.urlopen": _NET,
    "http.client.HTTPConnection": _NET, "http.client.HTTPSConnection": _NET,
    "http.server.HTTPServer": _NET_SERVER, "http.server.ThreadingHTTPServer": _NET_SERVER,
    "socketserver.*": _NET_SERVER, "xmlrpc.server.*": _NET_SERVER,
    "xmlrpc.client.ServerProxy": _NET,
    "ftplib.*": _NET, "smtplib.*": _NET, "telnetlib.*": _NET, "poplib.*": _NET,
    "imaplib.*": _NET, "nntplib.*": _NET,
    "asyncio.open_connection": _NET, "asyncio.start_server": _NET_SERVER,
    "asyncio.open_unix_connection": _NET, "asyncio.start_unix_server": _NET_SERVER,
    "ssl.wrap_socket": _NET, "ssl.SSLSocket": _NET,
    "requests.*": _NET, "httpx.*": _NET, "aiohttp.*": _NET, "urllib3.*": _NET,
    "websocket.*": _NET, "websockets.*": _NET, "pycurl.*": _NET, "scapy.*": _NET,
    "dns.*": _NET_DNS, "webbrowser.*": _NET,
    # ffi
    "ctypes.*": _FFI, "_ctypes.*": _FFI, "cffi.*": _FFI, "_cffi_backend.*": _FFI,
    "importlib.machinery.ExtensionFileLoader": _FFI, "sys.setdlopenflags": _FFI,
    "mmap.mmap": _MMAP,
    # deserialization
    **{f"{m}.{f}": _DESER for m in ("pickle", "_pickle", "cPickle", "dill", "cloudpickle")
       for f in ("load", "loads", "Unpickler")},
    "marshal.load": _DESER, "marshal.loads": _DESER, "shelve.open": _DESER,
    "shelve.DbfilenameShelf": _DESER,
    "yaml.unsafe_load": _DESER, "yaml.unsafe_load_all": _DESER, "yaml.UnsafeLoader": _DESER,
    "jsonpickle.decode": _DESER, "joblib.load": _DESER, "torch.load": _DESER,
    "pandas.read_pickle": _DESER, "copyreg.*": _DESER,
    # dynamic code loading
    "runpy.*": _DYN_IMPORT, "imp.load_source": _DYN_IMPORT, "imp.load_module": _DYN_IMPORT,
    "imp.load_dynamic": _FFI, "importlib.util.spec_from_file_location": _DYN_IMPORT,
    "importlib.util.spec_from_loader": _DYN_IMPORT, "importlib.util.module_from_spec": _DYN_IMPORT,
    "importlib.machinery.SourceFileLoader": _DYN_IMPORT,
    "importlib.machinery.SourcelessFileLoader": _DYN_IMPORT,
    "zipimport.zipimporter": _DYN_IMPORT, "importlib.reload": _DYN_IMPORT,
    "code.interact": _INTERACT, "code.InteractiveConsole": _INTERACT,
    "code.InteractiveInterpreter": _INTERACT, "pdb.*": _INTERACT,
    "codeop.*": _DYN_IMPORT,
    "types.CodeType": _CODE_OBJ, "types.FunctionType": _CODE_OBJ, "types.LambdaType": _CODE_OBJ,
    "builtins.__build_class__": _CODE_OBJ,
    # introspection
    "sys._getframe": _INTRO, "sys._current_frames": _INTRO, "inspect.currentframe": _INTRO,
    "inspect.stack": _INTRO, "inspect.getouterframes": _INTRO, "inspect.trace": _INTRO,
    "traceback.walk_stack": _INTRO,
    "gc.get_objects": _HEAP, "gc.get_referrers": _HEAP, "gc.get_referents": _HEAP,
    "sys.settrace": _TRACE, "sys.setprofile": _TRACE, "sys.addaudithook": _TRACE,
    "threading.settrace": _TRACE, "threading.setprofile": _TRACE,
    "sys.call_tracing": _TRACE,
    # environment and privileges
    **{f"os.{n}": _PRIV for n in (
        "setuid", "setgid", "seteuid", "setegid", "setreuid", "setregid", "setresuid",
        "setresgid", "setgroups", "initgroups", "setsid", "setpgid")},
    "os.chroot": _NS, "os.unshare": _NS, "os.setns": _NS,
    "os.putenv": _ENV_WRITE, "os.unsetenv": _ENV_WRITE,
    "site.addsitedir": _SITE, "site.getsitepackages": _SITE, "site.getusersitepackages": _SITE,
    "sysconfig.get_paths": _SITE,
    "resource.setrlimit": _RLIMIT, "resource.prlimit": _RLIMIT,
    # filesystem
    **{f"os.{n}": _FS_DESTROY for n in (
        "remove", "unlink", "rmdir", "removedirs", "rename", "renames", "replace", "symlink",
        "link", "truncate")},
    "shutil.rmtree": _FS_DESTROY, "shutil.move": _FS_DESTROY, "shutil.chown": _FS_PERM,
    "os.chmod": _FS_PERM, "os.chown": _FS_PERM, "os.lchown": _FS_PERM, "os.fchmod": _FS_PERM,
    "os.mknod": _FS_SPECIAL, "os.mkfifo": _FS_SPECIAL,
    # crypto weakness
    "hashlib.md5": _WEAK_HASH, "hashlib.sha1": _WEAK_HASH, "crypt.*": _WEAK_HASH,
}

#: Functions that run code given as a string or code object.
EXEC_FUNCS = frozenset({"builtins.exec", "builtins.eval", "builtins.compile"})
#: Functions that import a module by name.
IMPORT_FUNCS = frozenset({"builtins.__import__", "importlib.import_module", "importlib.__import__"})

#: Attributes whose use is a sandbox-escape primitive (object graph and frame walking).
ESCAPE_ATTRS = frozenset({
    "__subclasses__", "__globals__", "__builtins__", "__code__", "f_globals", "f_builtins",
    "f_locals", "f_back", "gi_frame", "cr_frame", "ag_frame", "tb_frame", "co_code",
    "__loader__", "__closure__", "cell_contents", "func_globals", "gi_code",
})
#: Attributes that are suspicious but also occur in ordinary code.
INTROSPECTION_ATTRS = frozenset({"__mro__", "__bases__", "__base__", "__getattribute__",
                                 "__reduce__", "__reduce_ex__", "__dict__", "__self__"})

#: Modules whose reflective use (computed getattr, folded names) signals intent to hide.
SENSITIVE_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "sys", "builtins", "__builtin__", "ctypes", "_ctypes",
    "cffi", "socket", "_socket", "pickle", "_pickle", "marshal", "importlib", "pty", "shutil",
    "signal", "resource", "gc", "inspect", "code", "runpy", "urllib", "urllib.request",
    "http.client", "shelve", "types", "_posixsubprocess", "multiprocessing", "threading",
    "commands", "platform", "ftplib", "smtplib", "telnetlib", "site", "io", "codecs",
})

#: Names that, when produced by folding or decoding, reveal a hidden dangerous lookup.
SENSITIVE_NAMES = frozenset({
    "system", "popen", "exec", "eval", "compile", "__import__", "execv", "execve", "execl",
    "execvp", "spawnl", "spawnv", "fork", "forkpty", "import_module", "getattr", "setattr",
    "open", "loads", "load", "Popen", "check_output", "check_call", "call", "run",
    "getoutput", "CDLL", "cdll", "pythonapi", "memmove", "kill", "remove", "rmtree", "unlink",
    "__subclasses__", "__globals__", "__builtins__", "__code__", "__class__", "__bases__",
    "__mro__", "__base__", "__dict__", "__getattribute__", "f_globals", "f_back",
    "connect", "socket", "urlopen", "modules", "environ", "putenv", "setuid", "chroot",
}) | SENSITIVE_MODULES


_PREFIX_PARTS = max(k.count(".") for k in CAPABILITIES if k.endswith(".*"))


def lookup(qualname: str) -> Capability | None:
    """The capability of ``qualname``, matching exact names first, then ``prefix.*`` entries."""
    cap = CAPABILITIES.get(qualname)
    if cap is not None:
        return cap
    parts = qualname.split(".", _PREFIX_PARTS)  # no entry is deeper: '.' * 10**6 costs nothing
    for i in range(min(len(parts) - 1, _PREFIX_PARTS), 0, -1):
        cap = CAPABILITIES.get(".".join(parts[:i]) + ".*")
        if cap is not None:
            return cap
    return None
