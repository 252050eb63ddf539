"""Prometheus metrics of one server, in its own registry (no global state shared with others)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from cellblock.pipeline import PipelineResult

if TYPE_CHECKING:
    from cellblock.service._core import ServiceCore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServiceMetrics:
    def __init__(self, core: ServiceCore) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter(
            "cellblock_runs",
            "Runs finished, by status and runtime",
            ["status", "runtime"],
            registry=r,
        )
        self.run_latency = Histogram(
            "cellblock_run_latency_seconds",
            "Time from accepting a run to its result (assess, decide, run, record)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.audit_append = Histogram(
            "cellblock_audit_append_seconds",
            "Latency of one audit log append",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        self.engine_errors = Counter(
            "cellblock_engine_errors", "Runs that failed in the sandbox engine", registry=r
        )
        self.rejections = Counter(
            "cellblock_http_rejections",
            "Requests refused before running, by HTTP status",
            ["code"],
            registry=r,
        )
        r.register(_LiveCollector(core))

    def observe_run(self, result: PipelineResult, seconds: float) -> None:
        runtime = result.execution.runtime if result.execution is not None else "none"
        self.runs.labels(status=result.status, runtime=runtime).inc()
        self.run_latency.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    """Figures read at scrape time: pools, runs in flight, and this server's live cells."""

    def __init__(self, core: ServiceCore) -> None:
        self._core = core

    def describe(self) -> Iterator[Any]:
        return iter(())  # dynamic families: nothing to reserve at registration

    def collect(self) -> Iterator[Any]:
        from cellblock.service._monitor import live_cells

        ready = GaugeMetricFamily(
            "cellblock_pool_ready", "Warm cells ready in the pool", labels=["policy"]
        )
        misses = CounterMetricFamily(
            "cellblock_pool_misses", "Runs that found no warm cell", labels=["policy"]
        )
        hits = CounterMetricFamily(
            "cellblock_pool_hits", "Runs served by a warm cell", labels=["policy"]
        )
        for pipeline in self._core.pipelines():
            pool = getattr(pipeline, "_pool", None)  # created lazily by the pipeline
            if pool is None:
                continue
            stats = pool.stats()
            ready.add_metric([pipeline.policy.name], stats.ready)
            misses.add_metric([pipeline.policy.name], stats.misses)
            hits.add_metric([pipeline.policy.name], stats.hits)
        yield ready
        yield misses
        yield hits
        yield GaugeMetricFamily(
            "cellblock_runs_in_flight",
            "Runs accepted and not finished",
            value=len(self._core.in_flight()),
        )
        cells = live_cells(self._core.backend, owned_by_me=True, sample_s=0.0)
        yield GaugeMetricFamily("cellblock_live_cells", "Cells of this server", value=len(cells))
        memory = GaugeMetricFamily(
            "cellblock_cell_memory_bytes", "Memory of each live cell", labels=["cell"]
        )
        cpu = CounterMetricFamily(
            "cellblock_cell_cpu_seconds", "CPU time of each live cell", labels=["cell"]
        )
        pids = GaugeMetricFamily("cellblock_cell_pids", "Tasks in each live cell", labels=["cell"])
        for cell in cells:
            if cell.memory_bytes is not None:
                memory.add_metric([cell.short_id], cell.memory_bytes)
            if cell.cpu_seconds is not None:
                cpu.add_metric([cell.short_id], cell.cpu_seconds)
            if cell.pids is not None:
                pids.add_metric([cell.short_id], cell.pids)
        yield memory
        yield cpu
        yield pids
