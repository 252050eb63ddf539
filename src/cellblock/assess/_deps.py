"""Dependency check: which imports the sandbox image cannot satisfy.

The image runs Debian bookworm's ``python3`` (3.11) with the standard library only. Debian moves
a few standard modules into separate packages the image does not install, and the Windows-only
modules never exist on Linux; both are subtracted from ``sys.stdlib_module_names``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

#: Standard modules that Debian ships in separate packages (python3-tk, python3-distutils,
#: python3-lib2to3, python3-venv, idle) which the image does not install.
DEBIAN_SPLIT_MODULES: frozenset[str] = frozenset(
    {"tkinter", "_tkinter", "turtle", "turtledemo", "idlelib", "distutils", "lib2to3",
     "ensurepip"}
)
#: Standard modules that exist only on Windows.
WINDOWS_ONLY_MODULES: frozenset[str] = frozenset(
    {"msvcrt", "winreg", "winsound", "_winapi", "_msi", "msilib", "nt", "_overlapped",
     "_winreg"}
)

#: Top-level modules importable in the sandbox image: the source of truth for the check.
IMAGE_MODULES: frozenset[str] = (
    frozenset(sys.stdlib_module_names) - DEBIAN_SPLIT_MODULES - WINDOWS_ONLY_MODULES
)
#: Every standard module name, whatever the platform: anything else is third-party.
STDLIB_MODULES: frozenset[str] = frozenset(sys.stdlib_module_names)


def check_dependencies(
    imports: Iterable[str], available_modules: Iterable[str] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return ``(dependencies, missing)``.

    ``dependencies`` are the third-party top-level packages the code imports; ``missing`` are
    the imported top-level modules ``available_modules`` (default :data:`IMAGE_MODULES`) lacks,
    which includes standard modules the image does not ship (``tkinter``).
    """
    available = IMAGE_MODULES if available_modules is None else frozenset(available_modules)
    tops = {m.split(".")[0] for m in imports if m and not m.startswith(".")}
    tops.discard("__future__") if "__future__" in available else None
    deps = tuple(sorted(t for t in tops if t not in STDLIB_MODULES))
    missing = tuple(sorted(t for t in tops if t not in available and t != "__future__"))
    return deps, missing
