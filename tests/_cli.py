"""Running the real ``cellblock`` command line in a child process (shared by the test areas)."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cellblock(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m cellblock.cli ARGS`` with ``env`` added to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "cellblock.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
