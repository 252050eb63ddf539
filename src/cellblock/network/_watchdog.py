"""A small host process that removes an owner's cell networks when the owner dies.

Containers end by themselves when their owner dies (the engine closes their stdin); a network
has no process to end, so one watchdog per owner process waits for the owner to go and then
runs the same reaping as ``cellblock gc``. It holds no engine connection while it waits.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time

from cellblock.sandbox import _owner

_lock = threading.Lock()
_started_for: int | None = None  # the pid this process started a watchdog for (forks differ)


def ensure_watchdog() -> None:
    """Start this process's watchdog once (again in a forked child, which is another owner)."""
    global _started_for
    with _lock:
        if _started_for == os.getpid():
            return
        labels = _owner.labels()
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cellblock.network._watchdog",
                labels["cellblock.owner_pid"],
                labels["cellblock.owner_start"],
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a signal to the owner's group does not reach it
            close_fds=True,
        )
        _started_for = os.getpid()


def _watch(pid: str, start: str) -> None:
    labels = {**_owner.labels(), "cellblock.owner_pid": pid, "cellblock.owner_start": start}
    while _owner.is_alive(labels):
        time.sleep(1.0)
    from cellblock.network.docker import LABEL_NETWORK
    from cellblock.sandbox.docker import connect, reap

    client = connect()
    end = time.monotonic() + 120
    while time.monotonic() < end:
        with contextlib.suppress(Exception):
            reap(client)
        left = client.api.networks(
            filters={"label": [f"{LABEL_NETWORK}=1", f"cellblock.owner_pid={pid}"]}
        )
        if not [n for n in left if (n.get("Labels") or {}).get("cellblock.owner_start") == start]:
            return
        time.sleep(2.0)


if __name__ == "__main__":
    with contextlib.suppress(Exception):
        _watch(sys.argv[1], sys.argv[2])
