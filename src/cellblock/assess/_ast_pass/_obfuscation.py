"""Strings and obfuscation: sensitive and escape paths, names folded from pieces, decoded
payloads, decoders on the way to ``exec``, and reflective attribute lookups."""

from __future__ import annotations

import ast
import re

from cellblock.assess import _capabilities as caps
from cellblock.assess._ast_pass._base import PassBase
from cellblock.assess._ast_pass._fold import DECODERS
from cellblock.assess._ast_pass._values import MAX_PAYLOAD_DEPTH, as_ref, as_str
from cellblock.assess._interface import Level

_SENSITIVE_PATH = re.compile(
    r"^(/etc/(passwd|shadow|sudoers|crontab|cron\.|ssh/|hosts|ld\.so\.preload)|/root\b|"
    r"/proc/(self|\d+|1)/(environ|mem|maps|root|cwd|fd|cmdline|exe)|/proc/sys|/proc/sysrq|"
    r"/proc/kcore|/sys/(fs/cgroup|kernel)|/dev/(mem|kmem|port|sd[a-z]|nvme|xvd)|"
    r"/var/run/docker\.sock|/run/docker\.sock|/run/containerd|/var/spool/cron|/boot/)"
    r"|(^|/)\.ssh(/|$)|id_rsa|id_ed25519|authorized_keys|\.aws/credentials|\.docker/config"
    r"|\.kube/config|\.bash_history|(^|/)\.bashrc$|(^|/)\.profile$|\.netrc$|\.pgpass$"
)
_ESCAPE_PATH = re.compile(
    r"(sitecustomize|usercustomize)(\.py)?$|\.pth$|site-packages|dist-packages|"
    r"/proc/(self|\d+)/mem|/proc/1/root|release_agent|notify_on_release|core_pattern|"
    r"docker\.sock|/dev/(mem|kmem)|/sys/fs/cgroup|ld\.so\.preload"
)


class ObfuscationRules(PassBase):
    """Checks on strings and on how names are reached."""

    def _check_string(self, node: ast.AST, s: str, obf: bool, decoded: bool = False) -> None:
        if len(s) < 512 and _ESCAPE_PATH.search(s):  # a path is short; a megabyte is slow
            self.add(node, "cb.escape.path", "escape", Level.CRITICAL,
                     f"names a path used to persist or escape ({s[:80]!r}): site-packages, "
                     ".pth/sitecustomize, container runtime or kernel interfaces", cwe=668)
        elif len(s) < 512 and _SENSITIVE_PATH.search(s):
            self.add(node, "cb.filesystem.sensitive-path", "filesystem", Level.HIGH,
                     f"names a sensitive system path ({s[:80]!r})", cwe=22)
        if not obf:
            return
        if s in caps.SENSITIVE_NAMES:
            lv = Level.HIGH if decoded else Level.MEDIUM
            self.add(node, "cb.obfuscation.folded-name", "obfuscation", lv,
                     f"builds the name {s!r} from pieces or an encoding to hide it", cwe=506)
        if decoded and self.payload_depth < MAX_PAYLOAD_DEPTH:
            self._check_payload(node, s, executed=False)

    def _mentions_decoder(self, expr: ast.AST, depth: int = 0, seen: set[str] | None = None
                          ) -> bool:
        """Whether ``expr`` (following names and local functions) passes through a decoder."""
        if depth > 6:
            return False
        seen = seen if seen is not None else set()
        for n in ast.walk(expr):
            if isinstance(n, ast.Call):
                for f in self.res.resolve(n.func):
                    q = as_ref(f)
                    if q in DECODERS or q in ("zlib.decompress", "marshal.loads"):
                        return True
                    if q and q.startswith("<local>."):
                        name = q.split(".", 1)[1]
                        if name not in seen:
                            seen.add(name)
                            for fd in self.b.functions.get(name, ()):
                                if self._mentions_decoder(fd, depth + 1, seen):
                                    return True
                # .decode() alone is ordinary; .decode("rot13"), .fromhex(...) etc. are not
                if isinstance(n.func, ast.Attribute) and n.func.attr in (
                        "decode", "fromhex", "decompress", "b64decode", "translate") and (
                        n.func.attr != "decode" or n.args):
                    return True
            elif isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Slice):
                st = n.slice.step
                if isinstance(st, ast.UnaryOp) and isinstance(st.op, ast.USub):
                    return True
            elif isinstance(n, ast.Name) and n.id not in seen:
                seen.add(n.id)
                for v in self.b.values.get(n.id, ()):
                    if self._mentions_decoder(v, depth + 1, seen):
                        return True
        return False


    def _check_reflection(self, node: ast.Call, q: str) -> None:
        args = node.args
        if len(args) < 2:
            return
        owners = [v for v in self.res.resolve(args[0]) if v.kind == "ref"]
        names = self.res.resolve(args[1])
        for nm in names:
            s = as_str(nm)
            if s in caps.ESCAPE_ATTRS:
                self.add(node, "cb.escape.dunder-walk", "escape", Level.CRITICAL,
                         f"reaches {s} through {q.split('.')[-1]}()", cwe=693)
        owner_names = {str(o.value) for o in owners}
        sensitive = {o for o in owner_names if o.split(".")[0] in caps.SENSITIVE_MODULES
                     or o in ("builtins", "<globals>")}
        if q == "builtins.setattr" and sensitive:
            self.add(node, "cb.escape.monkeypatch", "escape", Level.CRITICAL,
                     f"replaces attributes of {', '.join(sorted(sensitive))} by reflection",
                     cwe=693)
            return
        if not names and sensitive:
            self.add(node, "cb.obfuscation.computed-getattr", "obfuscation", Level.HIGH,
                     f"looks up a computed attribute name on {', '.join(sorted(sensitive))}",
                     cwe=506)
        elif sensitive and any(nm.obf or nm.decoded for nm in names):
            self.add(node, "cb.obfuscation.computed-getattr", "obfuscation", Level.HIGH,
                     f"looks up {', '.join(repr(as_str(n)) for n in names)} on "
                     f"{', '.join(sorted(sensitive))} with a name assembled at run time", cwe=506)
        elif sensitive and q == "builtins.getattr":
            self.add(node, "cb.obfuscation.getattr-module", "obfuscation", Level.MEDIUM,
                     f"reaches into {', '.join(sorted(sensitive))} with getattr() instead of "
                     "plain attribute access", cwe=506, confidence="medium")
