"""The result frame cannot be lost in the sandbox's teardown.

The runner used to exit right after writing its result, and its exit tears the sandbox down (under
gVisor the whole sandbox) while the frame may still be on its way through the engine. Now it waits
for the host, which has the result, to hang up; the container then ends by itself.
"""

from __future__ import annotations

import time

import pytest

from cellblock.sandbox import Limits, Status
from cellblock.sandbox.docker import DockerBackend, DockerCell
from cellblock.sandbox.interface import RunRequest
from tests.conftest import wait_until

pytestmark = pytest.mark.docker


def _running(backend: DockerBackend, container_id: str) -> bool:
    import docker.errors

    try:
        state = backend.client.api.inspect_container(container_id)["State"]
    except docker.errors.NotFound:
        return False
    return bool(state.get("Running"))


def test_runner_stays_until_the_host_has_the_result(backend: DockerBackend, runtime: str) -> None:
    limits = Limits(runtime=runtime, timeout_s=20)
    cell = backend.prepare(limits)
    assert isinstance(cell, DockerCell) and cell.container_id is not None
    try:
        cell._used = True  # what execute() does, without its discard, to look in between
        result = cell._execute(RunRequest("print('x' * 100)", limits=limits), time.monotonic())
        assert result.status is Status.OK and result.stdout == "x" * 100 + "\n"
        time.sleep(0.5)
        assert _running(backend, cell.container_id)  # still waiting for the host to hang up
    finally:
        cell.discard()
    # the hang-up ends it (auto_remove deletes it); nothing is left behind
    assert wait_until(lambda: not _running(backend, cell.container_id), timeout=30)


def test_output_arrives_while_the_program_still_runs(backend: DockerBackend, runtime: str) -> None:
    limits = Limits(runtime=runtime, timeout_s=30)
    cell = backend.prepare(limits)
    assert isinstance(cell, DockerCell) and cell._sock is not None
    try:
        cell._used = True
        code = "import time\nprint('early', flush=True)\ntime.sleep(3)\nprint('late')"
        import json

        header = {
            "v": 2,
            "code_len": len(code),
            "stdin_len": 0,
            "timeout_s": 30,
            "stdout_cap": 1000,
            "stderr_cap": 1000,
            "filename": "main.py",
            "watch_host": True,
        }
        cell._sock.sendall(json.dumps(header).encode() + b"\n" + code.encode())
        frame = cell._read_frame(time.monotonic() + 20)
        # the first frame is the early output, not the result at the end
        assert frame is not None and frame["event"] == "output", frame
        import base64

        assert base64.b64decode(frame["data"]) == b"early\n"
    finally:
        cell.discard()
