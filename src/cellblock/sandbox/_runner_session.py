"""cellblock's in-container session server (persistent interpreter). Standard library only."""

from __future__ import annotations

from typing import Any


def serve(chan: int, header: dict[str, Any], request: Any, cgroup: Any) -> int:
    return 2
