"""Who owns a container: enough to tell later, safely, whether that process is still alive.

A pid alone is not enough (pids are reused), so the labels also carry the process start time
(from /proc) and the boot id. A container owned by another machine is never judged dead here.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # the command name may contain spaces and parentheses; fields restart after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def labels() -> dict[str, str]:
    pid = os.getpid()
    return {
        "cellblock.owner_pid": str(pid),
        "cellblock.owner_start": _start_ticks(pid),
        "cellblock.owner_boot": _boot_id(),
        "cellblock.owner_host": socket.gethostname(),
    }


def is_alive(container_labels: dict[str, str]) -> bool:
    """True unless we can prove the owning process is gone (fail safe: unknown means alive)."""
    if container_labels.get("cellblock.owner_host") != socket.gethostname():
        return True
    if container_labels.get("cellblock.owner_boot") != _boot_id():
        return False  # the machine rebooted since: the owner cannot be alive
    try:
        pid = int(container_labels.get("cellblock.owner_pid", ""))
    except ValueError:
        return False
    start = _start_ticks(pid)
    if not start:
        return False
    return start == container_labels.get("cellblock.owner_start")
