"""scripts/setup-gvisor.sh writes runsc's registration with --oci-seccomp, migrating old ones.

The merge runs for real on a temporary daemon.json (`--merge-only`: no engine, no reload); the
engine-side detection is exercised by CI, which runs the script on every machine.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "setup-gvisor.sh"


def merge(config: Path) -> dict:  # type: ignore[type-arg]
    # never run a script that would not stop before the engine: it would reload the real one
    assert "--merge-only" in SCRIPT.read_text(), "setup-gvisor.sh lacks --merge-only"
    subprocess.run(
        ["bash", str(SCRIPT), "--merge-only", "/usr/bin/runsc"],
        env={"PATH": "/usr/bin:/bin", "CELLBLOCK_DOCKER_CONFIG": str(config)},
        check=True,
        capture_output=True,
    )
    result: dict = json.loads(config.read_text())  # type: ignore[type-arg]
    return result


def test_fresh_machine_gets_both_arguments(tmp_path: Path) -> None:
    config = tmp_path / "docker" / "daemon.json"
    assert merge(config) == {
        "runtimes": {
            "runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none", "--oci-seccomp"]}
        }
    }


def test_registration_without_oci_seccomp_is_migrated_keeping_everything_else(
    tmp_path: Path,
) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(
        json.dumps(
            {
                "mtu": 1400,
                "runtimes": {
                    "runsc": {"path": "/opt/runsc", "runtimeArgs": ["--network=none", "--debug"]},
                    "other": {"path": "/usr/bin/other"},
                },
            }
        )
    )
    first = merge(config)
    assert first == {
        "mtu": 1400,
        "runtimes": {
            "runsc": {
                "path": "/opt/runsc",
                "runtimeArgs": ["--network=none", "--oci-seccomp", "--debug"],
            },
            "other": {"path": "/usr/bin/other"},
        },
    }
    assert merge(config) == first  # idempotent
