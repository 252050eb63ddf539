"""``print(1)`` through the peers (llm-sandbox, epicbox) next to cellblock and a raw Docker SDK
one-shot, on the same local images, in one invocation.

    .venv/bin/pip install llm-sandbox epicbox     # not project dependencies
    .venv/bin/python bench/peers_bench.py [--quick]

No image can be pulled on this machine, so each peer is pointed at a local image and helped:

* llm-sandbox 0.3.x (``SandboxSession``, one session per run: open, run, close, its own
  single-use pattern): ``image="cellblock/base:bookworm"`` (present locally, so it does not
  pull), ``skip_environment_setup=True`` (its setup creates a venv and pip-installs, which needs
  the network), ``command=["sleep", "infinity"]`` (the base image has no CMD; its own images
  do), ``stop_signal="SIGKILL"`` (``sleep`` as PID 1 ignores SIGTERM, so ``close()`` would wait
  the 10 s stop timeout), the execution command set to ``python3 {file}`` (it runs ``python``,
  which the Debian image does not have), and a ``cellblock.bench`` label so it is cleaned up.
* epicbox 1.1.0 (last release, 2019): its ``get_docker_client`` passes ``method_whitelist`` to
  urllib3's ``Retry``, removed in urllib3 2; a subclass that maps it to ``allowed_methods`` is
  patched in. Profile: ``cellblock/base:bookworm``, user 10001, read-only root. It cannot set
  labels, so its containers (named ``epicbox-<uuid>``, removed by epicbox itself) are also
  swept by name at exit.

Neither peer applies cellblock's hardening (seccomp profile, cap drop, tmpfs, pids, ...): they
run with their own defaults, which is part of what is being compared.
Results: bench/results/peers_bench.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_LABEL,
    BENCH_PID_LABEL,
    PRINT1,
    LoadSampler,
    RawOneShot,
    cleanup,
    interleave,
    machine_info,
    percentile,
    summary,
    table,
    write_json,
)
from cellblock.sandbox.docker import DockerBackend
from cellblock.sandbox.interface import Limits, RunRequest
from cellblock.sandbox.pool import Pool

PEER_IMAGE = "cellblock/base:bookworm"


def llm_sandbox_variant() -> tuple[Any | None, str]:
    try:
        import llm_sandbox
        from llm_sandbox import SandboxSession
    except ImportError as exc:
        return None, f"not installed ({exc})"
    from importlib.metadata import version as dist_version

    version = getattr(llm_sandbox, "__version__", None) or dist_version("llm-sandbox")

    def run() -> None:
        session = SandboxSession(
            lang="python",
            image=PEER_IMAGE,
            skip_environment_setup=True,
            runtime_configs={
                "labels": {BENCH_LABEL: "1", BENCH_PID_LABEL: str(os.getpid())},
                "command": ["sleep", "infinity"],
                "stop_signal": "SIGKILL",
            },
        )
        session.language_handler.config.execution_commands = ["python3 {file}"]
        with session:
            out = session.run(PRINT1)
        if out.exit_code != 0 or out.stdout.strip() != "1":
            raise RuntimeError(f"llm-sandbox gave {out.exit_code} {out.stdout!r} {out.stderr!r}")

    return run, f"llm-sandbox {version}"


def epicbox_variant() -> tuple[Any | None, str]:
    try:
        import epicbox
        import epicbox.utils
        from urllib3.util.retry import Retry
    except ImportError as exc:
        return None, f"not installed ({exc})"

    class CompatRetry(Retry):
        def __init__(self, *args: Any, method_whitelist: Any = None, **kwargs: Any) -> None:
            if method_whitelist is not None:
                kwargs.setdefault("allowed_methods", method_whitelist)
            super().__init__(*args, **kwargs)

    epicbox.utils.Retry = CompatRetry
    epicbox.configure(
        profiles=[epicbox.Profile("bench", PEER_IMAGE, user="10001:10001", read_only=True)]
    )
    limits = {"cputime": 10, "realtime": 10, "memory": 256}

    def run() -> None:
        out = epicbox.run("bench", "python3 -c 'print(1)'", limits=limits)
        if out["exit_code"] != 0 or out["stdout"].strip() != b"1":
            raise RuntimeError(f"epicbox gave {out}")

    return run, "epicbox 1.1.0"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds; under a minute")
    parser.add_argument("--rounds", type=int)
    args = parser.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 30)

    backend = DockerBackend()
    client = backend.client
    machine = machine_info(client)
    limits = Limits()
    pool = Pool(backend, size=1, workers=1, idle_timeout_s=300)
    report: dict[str, Any] = {"bench": "peers_bench", "quick": args.quick, "machine": machine}
    sampler = LoadSampler()
    try:
        pool.warm(limits, wait=True)
        request = RunRequest(PRINT1, limits=limits)

        def pooled() -> None:
            assert pool.run(request).stdout.strip() == "1"

        def cold() -> None:
            assert backend.run(request).stdout.strip() == "1"

        variants: dict[str, Any] = {
            "cellblock pooled (runc)": pooled,
            "cellblock cold (runc)": cold,
            "raw SDK one-shot (create..remove)": RawOneShot(backend, limits),
        }
        peers: dict[str, str] = {}
        for make in (llm_sandbox_variant, epicbox_variant):
            fn, label = make()
            if fn is None:
                print(f"{make.__name__[:-8]}: {label}")
                peers[make.__name__[:-8]] = label
                continue
            try:
                fn()  # does it run offline at all?
            except Exception as exc:
                peers[label] = f"cannot run offline: {type(exc).__name__}: {exc}"
                print(f"{label}: {peers[label]}")
                continue
            variants[label] = fn
            peers[label] = "ran"

        def settle(_name: str) -> None:
            pool.warm(limits, wait=True)
            time.sleep(0.02)

        samples = interleave(variants, rounds, warmup=1, before_each=settle)
        raw50 = percentile(samples["raw SDK one-shot (create..remove)"], 50)
        results, rows = {}, []
        for name, values in samples.items():
            s = summary(values)
            s["ratio_to_raw_oneshot"] = round(s["p50_ms"] / 1000 / raw50, 3)
            results[name] = s
            rows.append([name, s["n"], s["p50_ms"], s["p90_ms"], s["ratio_to_raw_oneshot"]])
        print(
            f"\nprint(1) latency with peers, {rounds} interleaved rounds "
            f"({machine['cpu_model']}, {machine['cores']} cores)"
        )
        print(table(["variant", "n", "p50 ms", "p90 ms", "x raw 1-shot"], rows))
        report.update(
            {
                "rounds": rounds,
                "peers": peers,
                "results": results,
                "limits": dataclasses.asdict(limits),
            }
        )
    finally:
        pool.close()
        report["load_during_run"] = sampler.stop()
        report["containers_force_removed_at_exit"] = cleanup(client, extra_names=["epicbox-"])
    write_json("peers_bench", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
