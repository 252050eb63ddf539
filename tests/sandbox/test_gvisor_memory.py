"""gVisor keeps its results: its own kernel does not come out of the program's budget.

Regression tests for issue 9, point 3. Before: about two dozen busy processes took a runsc
sandbox down within about 2 s with the output lost (the host pids cgroup refused gVisor's own
threads), and a memory hog could only end as ``killed`` (the whole sandbox) or a ``MemoryError``.
Now gVisor's kernel gets headroom in the cgroup (memory and threads) and the runner enforces the
program's budget inside, so the result is ``oom`` and reported by the runner itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cellblock.sandbox import Limits, Status
from cellblock.sandbox.docker import DockerBackend, runsc_headroom
from cellblock.sandbox.interface import Backend, RunRequest

pytestmark = pytest.mark.docker
MIB = 1024 * 1024


@pytest.fixture
def runsc(backend: Backend) -> Iterator[str]:
    import os

    if "runsc" not in backend.runtimes():
        if os.environ.get("CELLBLOCK_REQUIRE_RUNSC"):
            pytest.fail("runsc is required (CELLBLOCK_REQUIRE_RUNSC) but not registered")
        pytest.skip("gVisor (runsc) is not registered with the engine")
    yield "runsc"


def test_two_dozen_busy_processes_do_not_take_the_sandbox_down(
    backend: Backend, runsc: str
) -> None:
    code = """
import os, time
print("start", flush=True)
for _ in range(24):
    if os.fork() == 0:
        keep = bytearray(2 << 20)
        while True:
            pass
print("forked", flush=True)
time.sleep(2)
print("survived", flush=True)
"""
    limits = Limits(runtime=runsc, memory_bytes=256 * MIB, timeout_s=60)
    result = backend.run(RunRequest(code, limits=limits))
    assert result.error is None, result  # the runner reported: the sandbox did not die
    assert result.status is Status.OK, result
    assert result.stdout == "start\nforked\nsurvived\n"


def test_memory_hog_is_oom_within_its_budget_and_keeps_its_output(
    backend: Backend, runsc: str
) -> None:
    code = """
import sys
keep = []
for i in range(128):
    keep.append(bytearray(8 << 20))
    print("allocated", (i + 1) * 8, "MiB", flush=True)
"""
    limits = Limits(runtime=runsc, memory_bytes=128 * MIB, timeout_s=60)
    result = backend.run(RunRequest(code, limits=limits))
    assert result.error is None, result  # the runner, not the host backstop, ended it
    assert result.status is Status.OOM, result
    assert result.oom_killed and result.signal == 9
    lines = result.stdout.splitlines()
    assert lines and lines[0] == "allocated 8 MiB"
    assert 64 <= int(lines[-1].split()[1]) <= 128  # stopped near the budget, not at the headroom


def test_runsc_cgroup_has_headroom_for_gvisor_above_the_budget(
    backend: DockerBackend, runsc: str
) -> None:
    limits = Limits(runtime=runsc, memory_bytes=256 * MIB)
    cell = backend.prepare(limits)
    try:
        host = backend.client.api.inspect_container(cell.container_id)["HostConfig"]
        assert host["Memory"] == 256 * MIB + runsc_headroom(limits)
        assert host["MemorySwap"] == host["Memory"]  # still no swap
        assert host["PidsLimit"] >= 8 * limits.pids  # gVisor's own threads per guest task
    finally:
        cell.discard()


def test_runc_budget_is_the_cgroup_limit_itself(backend: DockerBackend) -> None:
    limits = Limits(memory_bytes=256 * MIB)
    cell = backend.prepare(limits)
    try:
        host = backend.client.api.inspect_container(cell.container_id)["HostConfig"]
        assert host["Memory"] == 256 * MIB
    finally:
        cell.discard()
