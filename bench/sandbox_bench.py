"""Latency of one ``print(1)``: cellblock pooled and cold (runc and runsc) against raw Docker,
``exec_run`` in a warm container and bare ``python3 -c`` on the host, all in one invocation.

    .venv/bin/python bench/sandbox_bench.py            # full: ~4 minutes
    .venv/bin/python bench/sandbox_bench.py --quick    # under a minute

Variants run round-robin (the order rotates every round). Before every sample the pool is
topped up and waited for, so each sample is measured on a quiet engine and pooled samples are
real pool hits (misses are counted and reported). Results: bench/results/sandbox_bench.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PRINT1,
    LoadSampler,
    RawOneShot,
    WarmExec,
    cleanup,
    host_python,
    interleave,
    machine_info,
    percentile,
    summary,
    table,
    verdict,
    write_json,
)
from cellblock.sandbox.docker import DockerBackend, DockerCell
from cellblock.sandbox.interface import Limits, RunRequest
from cellblock.sandbox.pool import Pool

BASELINE = "host /usr/bin/python3 -c"


def _check(result: Any, pooled: bool | None = None) -> None:
    if not result.ok or result.stdout.strip() != "1":
        raise RuntimeError(f"unexpected result: {result.status} {result.stdout!r} {result.error}")
    if pooled is not None and result.pooled != pooled:
        raise RuntimeError("expected a pooled run")


class PooledRun:
    def __init__(self, pool: Pool, limits: Limits):
        self.pool, self.request = pool, RunRequest(PRINT1, limits=limits)
        self.misses = 0

    def __call__(self) -> None:
        result = self.pool.run(self.request)
        _check(result)
        if not result.pooled:
            self.misses += 1


class ColdRun:
    def __init__(self, backend: DockerBackend, limits: Limits):
        self.backend, self.request = backend, RunRequest(PRINT1, limits=limits)

    def __call__(self) -> None:
        _check(self.backend.run(self.request), pooled=False)


# -- phases of one run, by wrapping the engine calls the library makes ----------------------------


class PhaseProbe:
    """Timestamps of the steps inside ``DockerCell`` without touching the library's source."""

    def __init__(self, backend: DockerBackend):
        self.backend = backend
        self.marks: dict[str, float] = {}
        self._saved: list[tuple[Any, str, Any]] = []

    def _wrap(self, owner: Any, name: str, label: str, *, before: str | None = None) -> None:
        original = getattr(owner, name)
        marks = self.marks

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if before:
                marks.setdefault(before, time.perf_counter())
            try:
                return original(*args, **kwargs)
            finally:
                marks[label] = time.perf_counter()

        self._saved.append((owner, name, owner.__dict__.get(name, _MISSING)))
        setattr(owner, name, wrapper)

    def __enter__(self) -> PhaseProbe:
        api = self.backend.client.api
        self._wrap(api, "create_host_config", "host_config")
        self._wrap(api, "create_container_from_config", "created")
        self._wrap(api, "attach_socket", "attached")
        self._wrap(api, "start", "started")
        original = DockerCell._read_frame
        marks = self.marks

        def read_frame(cell: DockerCell, deadline: float) -> Any:
            began = time.perf_counter()
            try:
                return original(cell, deadline)
            finally:
                if "handoff_begin" in marks:  # the result, read after the code was sent
                    marks["sent"] = began
                    marks["result"] = time.perf_counter()
                else:
                    marks["ready"] = time.perf_counter()

        execute = DockerCell._execute

        def execute_wrapper(cell: DockerCell, request: RunRequest, t0: float) -> Any:
            marks["handoff_begin"] = time.perf_counter()
            return execute(cell, request, t0)

        self._saved.append((DockerCell, "_read_frame", DockerCell.__dict__["_read_frame"]))
        self._saved.append((DockerCell, "_execute", DockerCell.__dict__["_execute"]))
        DockerCell._read_frame = read_frame  # type: ignore[method-assign]
        DockerCell._execute = execute_wrapper  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        for owner, name, value in reversed(self._saved):
            if value is _MISSING:
                with contextlib.suppress(AttributeError):
                    delattr(owner, name)
            else:
                setattr(owner, name, value)
        self._saved.clear()


_MISSING = object()

COLD_PHASES = [
    ("host_config", "t0", "host_config", "build HostConfig + seccomp (python)"),
    ("create", "host_config", "created", "engine: create container"),
    ("attach", "created", "attached", "engine: attach stdin/stdout"),
    ("start", "attached", "started", "engine: start (runc/runsc + cgroups + mounts)"),
    ("runner_ready", "started", "ready", "runner python up, READY frame read"),
    ("handoff", "handoff_begin", "sent", "send header + code"),
    ("result", "sent", "result", "runner: write, fork, run, cgroup read, RESULT frame"),
    ("return", "result", "end", "parse result, close socket"),
]
POOLED_PHASES = [
    ("take", "t0", "handoff_begin", "take a ready cell from the queue"),
    ("handoff", "handoff_begin", "sent", "send header + code"),
    ("result", "sent", "result", "runner: write, fork, run, cgroup read, RESULT frame"),
    ("return", "result", "end", "parse result, close socket"),
]


def measure_phases(backend: DockerBackend, pool: Pool, limits: Limits, n: int) -> dict[str, Any]:
    request = RunRequest(PRINT1, limits=limits)
    cold: list[dict[str, float]] = []
    pooled: list[dict[str, float]] = []
    inner: dict[str, list[float]] = {"cold": [], "pooled": []}
    for _ in range(n):
        for kind in ("cold", "pooled"):
            pool.warm(limits, wait=True)
            time.sleep(0.05)
            probe = PhaseProbe(backend)
            with probe:
                probe.marks["t0"] = time.perf_counter()
                result = backend.run(request) if kind == "cold" else pool.run(request)
                probe.marks["end"] = time.perf_counter()
            _check(result)
            m = probe.marks
            spec = COLD_PHASES if kind == "cold" else POOLED_PHASES
            if kind == "pooled" and not result.pooled:
                continue
            row = {name: m[b] - m[a] for name, a, b, _ in spec if a in m and b in m}
            row["total"] = m["end"] - m["t0"]
            (cold if kind == "cold" else pooled).append(row)
            inner[kind].append(result.duration_s)
    out: dict[str, Any] = {}
    for kind, rows, spec in (("cold", cold, COLD_PHASES), ("pooled", pooled, POOLED_PHASES)):
        phases = {}
        for name, _, _, what in [*spec, ("total", "", "", "whole call")]:
            values = [r[name] for r in rows if name in r]
            if values:
                phases[name] = {"what": what, **summary(values)}
        phases["program_inside"] = {
            "what": "program wall time measured by the runner (fork to exit)",
            **summary(inner[kind]),
        }
        out[kind] = phases
    return out


def print_phases(phases: dict[str, Any], title: str) -> None:
    print(f"\n{title}")
    for kind, rows in phases.items():
        print(
            table(
                [f"{kind} phase", "p50 ms", "p90 ms", "what"],
                [[name, r.get("p50_ms"), r.get("p90_ms"), r["what"]] for name, r in rows.items()],
            )
        )
        print()


# -- the pipeline ---------------------------------------------------------------------------------


def find_pipeline() -> Any | None:
    import cellblock

    fn = getattr(cellblock, "execute", None)
    if callable(fn):
        return fn
    for module in ("cellblock.execute", "cellblock.pipeline"):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        fn = getattr(mod, "execute", None)
        if callable(fn):
            return fn
    return None


def pipeline_variant(execute: Any, pool: Pool, workdir: Path) -> Any:
    """``cellblock.execute(code, policy=...)`` with a runc, pool-enabled, durable-audit policy."""
    from cellblock.audit import generate_keypair

    keys = workdir / "keys"
    keys.mkdir()
    generate_keypair(keys / "audit.key", keys / "audit.pub")
    from cellblock.policy import load_policy_file

    preset = Path(__file__).resolve().parent.parent / "src/cellblock/policy/presets/standard.yaml"
    policy_path = workdir / "cellblock.yaml"
    # runc, to compare with the raw runc one-shot; the preset's "auto" would pick runsc here
    policy_path.write_text(preset.read_text().replace("runtime: auto", "runtime: runc"))
    policy = load_policy_file(policy_path)
    policy = policy.model_copy(
        update={
            "audit": policy.audit.model_copy(
                update={"directory": workdir / "audit", "signing_key": keys / "audit.key"}
            ),
            "pool": policy.pool.model_copy(update={"enabled": True}),
        }
    )
    # A long-lived Pipeline, as an agent loop uses it: one policy, one open audit log, one pool.
    from cellblock.pipeline import Pipeline

    pipeline = Pipeline(policy, backend=pool.backend)
    pipeline.warm()
    print("pipeline: cellblock.Pipeline(policy).execute(code) with its own warm pool")

    def run() -> None:
        result = pipeline.execute(PRINT1)
        inner = result.execution
        stdout = getattr(inner, "stdout", "")
        if str(stdout).strip() != "1":
            raise RuntimeError(f"pipeline returned {result!r}")

    run.close = pipeline.close  # type: ignore[attr-defined]
    return run


def audit_pair_variant(workdir: Path) -> Any | None:
    """Two durable audit appends (execution.started + execution.finished): a pipeline part."""
    try:
        from cellblock.audit import AuditLog, generate_keypair
    except ImportError:
        return None
    keys = workdir / "parts-keys"
    keys.mkdir()
    generate_keypair(keys / "k", keys / "k.pub")
    log = AuditLog.open(workdir / "parts-audit", signing_key=keys / "k", durable=True)

    def run() -> None:
        log.append("execution.started", {"code_sha256": "0" * 64, "limits": Limits().to_dict()})
        log.append(
            "execution.finished", {"status": "ok", "exit_code": 0, "stdout_sha256": "0" * 64}
        )

    run.close = log.close  # type: ignore[attr-defined]
    return run


def assess_variant() -> Any | None:
    try:
        from cellblock.assess import assess
    except Exception as exc:  # the module is being written by someone else
        print(f"assessment: not importable yet ({type(exc).__name__}: {exc})")
        return None

    def run() -> None:
        assess(PRINT1)

    return run


# -- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds; under a minute")
    parser.add_argument("--rounds", type=int, help="rounds of the interleaved loop")
    parser.add_argument("--no-runsc", action="store_true", help="skip the gVisor variants")
    args = parser.parse_args(argv)
    rounds = args.rounds or (8 if args.quick else 60)
    phase_n = 4 if args.quick else 25

    backend = DockerBackend()
    client = backend.client
    machine = machine_info(client)
    limits = Limits()
    runsc = (
        None
        if args.no_runsc or "runsc" not in backend.runtimes()
        else limits.replace(runtime="runsc")
    )
    pool = Pool(backend, size=1, workers=2, idle_timeout_s=300)
    warm: WarmExec | None = None
    audit_part = None
    tmp = tempfile.TemporaryDirectory(prefix="cellblock-bench-")
    report: dict[str, Any] = {"bench": "sandbox_bench", "quick": args.quick, "machine": machine}
    sampler = LoadSampler()
    try:
        pool.warm(limits, wait=True)
        if runsc:
            pool.warm(runsc, wait=True)
        warm = WarmExec(backend, limits)
        raw = RawOneShot(backend, limits)
        raw_auto = RawOneShot(backend, limits, auto_remove=True)
        pooled = PooledRun(pool, limits)
        variants: dict[str, Any] = {
            "cellblock pooled (runc)": pooled,
            "cellblock cold (runc)": ColdRun(backend, limits),
            "raw SDK one-shot (create..remove)": raw,
            "raw SDK one-shot (auto_remove)": raw_auto,
            "exec_run in warm container": warm,
            BASELINE: host_python("/usr/bin/python3"),
            f"host {sys.executable} -c": host_python(sys.executable),
        }
        pooled_runsc = None
        if runsc:
            pooled_runsc = PooledRun(pool, runsc)
            variants["cellblock pooled (runsc)"] = pooled_runsc
            variants["cellblock cold (runsc)"] = ColdRun(backend, runsc)
        execute = find_pipeline()
        if execute is None:
            print("pipeline: not available yet")
        else:
            try:
                variants["pipeline (assess+pooled run+audit)"] = pipeline_variant(
                    execute, pool, Path(tmp.name)
                )
            except Exception as exc:
                print(f"pipeline: present but could not be driven ({type(exc).__name__}: {exc})")
        audit_part = audit_pair_variant(Path(tmp.name))
        if audit_part is not None:
            variants["part: 2 durable audit appends"] = audit_part
        assess_part = assess_variant()
        if assess_part is not None:
            variants["part: assess (fast path)"] = assess_part

        def settle(_name: str) -> None:
            pool.warm(limits, wait=True)
            if runsc:
                pool.warm(runsc, wait=True)
            time.sleep(0.02)  # let the previous container's exit and removal get going

        print(f"interleaving {len(variants)} variants x {rounds} rounds ...", file=sys.stderr)
        t_start = time.monotonic()
        samples = interleave(variants, rounds, before_each=settle)
        elapsed = time.monotonic() - t_start

        base = percentile(samples[BASELINE], 50)
        raw50 = percentile(samples["raw SDK one-shot (create..remove)"], 50)
        rows, results = [], {}
        for name, values in samples.items():
            s = summary(values)
            s["ratio_to_host_python"] = round(s["p50_ms"] / 1000 / base, 3)
            s["ratio_to_raw_oneshot"] = round(s["p50_ms"] / 1000 / raw50, 3)
            results[name] = s
            rows.append(
                [
                    name,
                    s["n"],
                    s["p50_ms"],
                    s["p90_ms"],
                    s["ratio_to_host_python"],
                    s["ratio_to_raw_oneshot"],
                ]
            )
        print(
            f"\nprint(1) latency, {rounds} interleaved rounds in {elapsed:.0f} s "
            f"(baseline: {BASELINE}; {machine['cpu_model']}, {machine['cores']} cores)"
        )
        print(table(["variant", "n", "p50 ms", "p90 ms", "x host py", "x raw 1-shot"], rows))
        stats = pool.stats()
        print(
            f"pool: hits={stats.hits} misses={stats.misses} created={stats.created} "
            f"(pooled misses in timed samples: runc={pooled.misses}"
            f"{f', runsc={pooled_runsc.misses}' if pooled_runsc else ''})"
        )

        raw_phases = {k: summary([p[k] for p in raw.phases]) for k in raw.phases[0]}
        print(
            "\nraw one-shot phases (p50 ms): "
            + ", ".join(f"{k}={v['p50_ms']}" for k, v in raw_phases.items())
        )

        print(
            f"\ntiming the phases of {phase_n} cold and {phase_n} pooled runs (instrumented) ...",
            file=sys.stderr,
        )
        phases = {"runc": measure_phases(backend, pool, limits, phase_n)}
        print_phases(phases["runc"], "phases (runc)")
        if runsc:
            phases["runsc"] = measure_phases(backend, pool, runsc, max(3, phase_n // 3))
            print_phases(phases["runsc"], "phases (runsc)")

        goals = []
        p = results["cellblock pooled (runc)"]
        goals.append(
            verdict(
                "pooled p50 / host python3 -c p50 <= 1.0",
                p["ratio_to_host_python"] <= 1.0,
                f"{p['p50_ms']:.2f} ms / {base * 1000:.2f} ms = {p['ratio_to_host_python']:.2f}",
            )
        )
        c = results["cellblock cold (runc)"]
        goals.append(
            verdict(
                "cold vs raw SDK one-shot (report; <= 1.0 means not slower)",
                c["ratio_to_raw_oneshot"] <= 1.0,
                f"{c['p50_ms']:.1f} ms / {raw50 * 1000:.1f} ms = {c['ratio_to_raw_oneshot']:.2f}; "
                f"vs auto_remove one-shot "
                f"{c['p50_ms'] / results['raw SDK one-shot (auto_remove)']['p50_ms']:.2f}",
            )
        )
        pipe = results.get("pipeline (assess+pooled run+audit)")
        if pipe is None:
            goals.append(
                verdict("pipeline p50 <= 0.25 x raw one-shot", None, "pipeline: not available yet")
            )
            parts = [results[k]["p50_ms"] for k in results if k.startswith("part:")]
            if parts:
                est = p["p50_ms"] + sum(parts)
                print(
                    f"  estimate from parts measured here: pooled run + "
                    f"{' + '.join(k[6:] for k in results if k.startswith('part:'))} = "
                    f"{est:.1f} ms = {est / 1000 / raw50:.2f} x raw one-shot "
                    "(assessment not included if it is not listed)"
                )
                report["pipeline_estimate_ms"] = round(est, 3)
        else:
            goals.append(
                verdict(
                    "pipeline p50 <= 0.25 x raw one-shot",
                    pipe["ratio_to_raw_oneshot"] <= 0.25,
                    f"{pipe['p50_ms']:.1f} ms / {raw50 * 1000:.1f} ms = "
                    f"{pipe['ratio_to_raw_oneshot']:.2f}",
                )
            )
        report.update(
            {
                "rounds": rounds,
                "elapsed_s": round(elapsed, 1),
                "baseline": BASELINE,
                "limits": dataclasses.asdict(limits),
                "results": results,
                "raw_oneshot_phases": raw_phases,
                "phases": phases,
                "pool_stats": dataclasses.asdict(pool.stats()),
                "goals": goals,
            }
        )
    finally:
        pool.close()
        if warm is not None:
            warm.close()
        if audit_part is not None:
            with contextlib.suppress(Exception):
                audit_part.close()  # type: ignore[attr-defined]
        forced = cleanup(client)
        report["containers_force_removed_at_exit"] = forced
        report["load_during_run"] = load = sampler.stop()
        print(f"load average during the run: mean {load['mean']}, max {load['max']}")
        tmp.cleanup()
    write_json("sandbox_bench", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
