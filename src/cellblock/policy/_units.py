"""Human units for policy files: sizes (``256m``), durations (``10s``), and how values are shown."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from cellblock.sandbox.errors import InvalidLimitsError
from cellblock.sandbox.interface import GIB, KIB, MIB, parse_size

TIB = 1024 * GIB

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def show(value: Any) -> str:
    """How a value found in a policy file is quoted in error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def parse_size_value(value: Any) -> int | None:
    """Bytes from ``256m``, ``1GiB``, ``512k`` or a byte count; ``None`` if it is not a size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return parse_size(value)
        except InvalidLimitsError:
            return None
    return None


def parse_duration_value(value: Any) -> float | None:
    """Seconds from ``10``, ``10s``, ``1.5s``, ``2m``, ``500ms``, ``1h``, ``1d``; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if not match:
            return None
        number, unit = match.groups()
        return float(number) * _DURATION_UNITS[(unit or "s").lower()]
    return None


def format_size(n: int) -> str:
    """``268435456`` -> ``256m``; byte counts that are not whole units stay plain numbers."""
    for suffix, unit in (("t", TIB), ("g", GIB), ("m", MIB), ("k", KIB)):
        if n and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def format_duration(seconds: float) -> str:
    """``60.0`` -> ``1m``, ``1.5`` -> ``1.5s``, ``86400`` -> ``1d``."""
    if seconds and float(seconds).is_integer():
        whole = int(seconds)
        for suffix, unit in (("d", 86400), ("h", 3600), ("m", 60)):
            if whole % unit == 0:
                return f"{whole // unit}{suffix}"
        return f"{whole}s"
    if 0 < seconds < 1 and round(seconds * 1000, 6).is_integer():
        return f"{round(seconds * 1000):d}ms"
    return f"{seconds:g}s"
