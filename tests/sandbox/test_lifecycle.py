"""Nothing left behind: containers end with their run, even when the caller is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from cellblock.sandbox import Limits, Pool, Status
from cellblock.sandbox.docker import LABEL_MANAGED, DockerBackend, reap
from cellblock.sandbox.interface import Backend, RunRequest
from tests.conftest import managed_containers, wait_until

pytestmark = pytest.mark.docker


def _spawn(script: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_container_carries_owner_labels_and_hardening(backend: DockerBackend) -> None:
    cell = backend.prepare(Limits())
    try:
        data = backend.client.api.inspect_container(cell.container_id)
        labels = data["Config"]["Labels"]
        assert labels[LABEL_MANAGED] == "1"
        assert labels["cellblock.owner_pid"] == str(os.getpid())
        assert labels["cellblock.owner_start"] and labels["cellblock.created"]
        host = data["HostConfig"]
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges:true" in host["SecurityOpt"]
        assert (
            host["NetworkMode"] in ("none", "default") and data["Config"]["NetworkDisabled"] is True
        )
        assert host["LogConfig"]["Type"] == "none"
        assert host["Memory"] == host["MemorySwap"] == Limits().memory_bytes
        assert host["PidsLimit"] == Limits().pids
        assert host["AutoRemove"] is True
        assert host["Binds"] in (None, []) and not data["Mounts"]
        assert data["Config"]["User"] == "0:0"  # the runner; the program drops to its own uid
        assert sorted(host["CapAdd"]) == ["KILL", "SETGID", "SETPCAP", "SETUID"]
    finally:
        cell.discard()
    assert wait_until(
        lambda: (
            not managed_containers(backend.client, os.getpid())
            or all(
                c["Id"] != cell.container_id
                for c in managed_containers(backend.client, os.getpid())
            )
        )
    )


def test_kill_minus_nine_mid_run_leaves_nothing(docker_client) -> None:  # type: ignore[no-untyped-def]
    proc = _spawn("""
        from cellblock.sandbox import Sandbox, Limits
        with Sandbox(Limits(timeout_s=120), reap=False) as sb:
            sb.run("import time\\nprint('running', flush=True)\\ntime.sleep(600)")
    """)
    try:
        assert wait_until(lambda: bool(managed_containers(docker_client, proc.pid)), timeout=30)
        time.sleep(0.5)  # the program is running inside
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # the engine closes the runner's stdin when the caller's connection drops; the runner
        # kills the program and exits; auto_remove deletes the container
        gone = wait_until(lambda: not managed_containers(docker_client, proc.pid), timeout=20)
        if not gone:  # the reaper, run by every new Sandbox, is the second line
            reap(docker_client)
        assert not managed_containers(docker_client, proc.pid)
        assert gone, "the container outlived its killed owner until the reaper ran"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_reaper_removes_created_but_never_started_containers(backend: DockerBackend) -> None:
    # a caller killed between create and start leaves a created container that nothing runs
    proc = _spawn("""
        from cellblock.sandbox.docker import DockerBackend
        from cellblock.sandbox.interface import Limits
        b = DockerBackend()
        api = b.client.api
        cfg = api.create_container_config(image=b.image_id, command=None, labels=b.labels(),
                                          host_config=b.host_config(Limits()), network_disabled=True)
        print(api.create_container_from_config(cfg)["Id"], flush=True)
        import os; os._exit(0)
    """)
    out, err = proc.communicate(timeout=60)
    container_id = out.strip()
    assert container_id, err
    assert any(c["Id"] == container_id for c in managed_containers(backend.client, proc.pid))
    result = subprocess.run(
        [sys.executable, "-m", "cellblock.cli", "gc"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "removed" in result.stdout
    assert not managed_containers(backend.client, proc.pid)


def test_reaper_spares_live_owners(backend: DockerBackend) -> None:
    cell = backend.prepare(Limits())
    try:
        reap(backend.client)
        assert cell.alive
        result = cell.execute(RunRequest("print('alive')", limits=Limits()))
        assert result.stdout == "alive\n"
    finally:
        cell.discard()


def test_pool_cells_are_single_use_and_share_nothing(backend: Backend) -> None:
    with Pool(backend, size=2) as pool:
        pool.warm(Limits(), wait=True)
        first = pool.run(
            RunRequest(
                "import os, sys\nopen('/work/secret', 'w').write('s')\nos.environ['LEAK'] = '1'\n"
                "sys.modules['leak'] = sys\nprint(os.getpid())",
                limits=Limits(),
            )
        )
        second = pool.run(
            RunRequest(
                "import os, sys\nprint(os.path.exists('/work/secret'), 'LEAK' in os.environ, "
                "'leak' in sys.modules)",
                limits=Limits(),
            )
        )
        assert first.pooled and second.pooled
        assert first.container_id != second.container_id
        assert second.stdout == "False False False\n"
        stats = pool.stats()
        assert stats.hits == 2


def test_pool_degrades_to_cold_start_for_a_new_profile(backend: Backend) -> None:
    with Pool(backend, size=1) as pool:
        result = pool.run(RunRequest("print('cold')", limits=Limits(pids=33)))
        assert result.stdout == "cold\n" and not result.pooled
        assert pool.stats().misses == 1


def test_pool_cells_end_when_their_owner_dies(docker_client) -> None:  # type: ignore[no-untyped-def]
    proc = _spawn("""
        from cellblock.sandbox import Sandbox, Limits
        sb = Sandbox(Limits(), pool_size=2, reap=False)
        sb._pool.warm(sb.limits, wait=True)
        print("warm", flush=True)
        import time; time.sleep(600)
    """)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "warm"
        assert len(managed_containers(docker_client, proc.pid)) >= 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert wait_until(lambda: not managed_containers(docker_client, proc.pid), timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_pool_runs_concurrently_from_threads(backend: Backend) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with Pool(backend, size=2) as pool:
        pool.warm(Limits(), wait=True)
        with ThreadPoolExecutor(4) as ex:
            results = list(
                ex.map(lambda i: pool.run(RunRequest(f"print({i})", limits=Limits())), range(8))
            )
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(8)]
    assert all(r.status is Status.OK for r in results)
    assert len({r.container_id for r in results}) == 8


def test_pool_skips_a_cell_whose_container_died(backend: DockerBackend) -> None:
    with Pool(backend, size=1, workers=1) as pool:
        pool.warm(Limits(), wait=True)
        cell = pool._queues[Limits()].ready[0][1]
        backend.client.api.kill(cell.container_id)  # type: ignore[attr-defined]
        assert wait_until(lambda: not cell.alive, timeout=10)
        result = pool.run(RunRequest("print('fresh')", limits=Limits()))
        assert result.status is Status.OK and result.stdout == "fresh\n"
        assert result.container_id != cell.container_id  # type: ignore[attr-defined]
