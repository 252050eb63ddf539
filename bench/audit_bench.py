"""Audit log benchmark: each figure next to the raw rate of the same operation without the audit
layer, measured in the same run on the same disk.

    .venv/bin/python bench/audit_bench.py [--dir DIR] [--n N]

Writes bench/results/audit.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cellblock.audit import AuditLog, generate_keypair, verify

PAYLOAD = {
    "decision": "allow",
    "policy": "default",
    "code_sha256": "ab" * 32,
    "findings": [{"rule": "B101", "line": 3}],
    "duration_ms": 123,
    "user": "alice",
}


def _line() -> bytes:
    return json.dumps({"hash": "0" * 64, "record": PAYLOAD}).encode() + b"\n"


def raw_write(path: Path, n: int, sync: bool) -> tuple[float, list[float]]:
    line = _line()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    lat: list[float] = []
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        os.write(fd, line)
        if sync:
            os.fdatasync(fd)
        lat.append(time.perf_counter() - t)
    el = time.perf_counter() - t0
    os.close(fd)
    return n / el, lat


def p99(lat: list[float]) -> float:
    return statistics.quantiles(lat, n=100)[98] * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    ap.add_argument("--n", type=int, default=50_000, help="buffered appends")
    ap.add_argument("--durable-n", type=int, default=3_000, help="durable appends")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="audit-bench-", dir=args.dir))
    try:
        return run(base, args.n, args.durable_n)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run(base: Path, n: int, dn: int) -> int:
    priv, pub = base / "k.key", base / "k.pub"
    generate_keypair(priv, pub)
    res: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }

    # Buffered appends (page cache, no fsync per record; checkpoints still fsync).
    d1 = base / "buffered"
    with AuditLog.open(d1, signing_key=priv, durable=False, rotate_bytes=1 << 40) as log:
        t0 = time.perf_counter()
        for _ in range(n):
            log.append("exec", PAYLOAD)
        buffered = n / (time.perf_counter() - t0)
    raw_buf, _ = raw_write(base / "raw-buffered", n, sync=False)
    res["buffered_append"] = {
        "audit_per_s": buffered,
        "raw_write_per_s": raw_buf,
        "goal_per_s": 50_000,
    }

    # Durable appends, one caller: returns only after fdatasync.
    d2 = base / "durable"
    lat: list[float] = []
    with AuditLog.open(d2, signing_key=priv, durable=True, rotate_bytes=1 << 40) as log:
        for _ in range(50):
            log.append("exec", PAYLOAD)
        t0 = time.perf_counter()
        for _ in range(dn):
            t = time.perf_counter()
            log.append("exec", PAYLOAD)
            lat.append(time.perf_counter() - t)
        durable = dn / (time.perf_counter() - t0)
    raw_dur, raw_lat = raw_write(base / "raw-durable", dn, sync=True)
    res["durable_append_1"] = {
        "audit_per_s": durable,
        "audit_p50_ms": statistics.median(lat) * 1000,
        "audit_p99_ms": p99(lat),
        "raw_write_fdatasync_per_s": raw_dur,
        "raw_p99_ms": p99(raw_lat),
        "goal_per_s": 5_000,
        "goal_p99_ms": 2.0,
    }

    # Durable appends, 8 threads: group commit shares one fdatasync per batch.
    d3 = base / "durable8"
    per = max(dn // 8, 100) * 2
    lat8: list[float] = []
    lk = threading.Lock()
    with AuditLog.open(d3, signing_key=priv, durable=True, rotate_bytes=1 << 40) as log:

        def worker() -> None:
            mine = []
            for _ in range(per):
                t = time.perf_counter()
                log.append("exec", PAYLOAD)
                mine.append(time.perf_counter() - t)
            with lk:
                lat8.extend(mine)

        ths = [threading.Thread(target=worker) for _ in range(8)]
        t0 = time.perf_counter()
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        durable8 = 8 * per / (time.perf_counter() - t0)
    res["durable_append_8_threads"] = {
        "audit_per_s": durable8,
        "audit_p99_ms": p99(lat8),
        "raw_write_fdatasync_per_s": raw_dur,
    }

    # Verification of the buffered log vs plain SHA-256 of the same bytes.
    seg_bytes = b"".join(p.read_bytes() for p in sorted(d1.glob("seg-*.jsonl")))
    lines = seg_bytes.splitlines(keepends=True)
    t0 = time.perf_counter()
    rep = verify(d1, trust_root=pub)
    vel = time.perf_counter() - t0
    assert rep.ok, rep.problems
    t0 = time.perf_counter()
    for line in lines:
        hashlib.sha256(line).digest()
    sha_rate = len(lines) / (time.perf_counter() - t0)
    res["verify"] = {
        "audit_records_per_s": rep.records / vel,
        "raw_sha256_lines_per_s": sha_rate,
        "records": rep.records,
        "goal_per_s": 100_000,
    }

    out = Path(__file__).with_name("results") / "audit.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    b, d, d8, v = (
        res[k]
        for k in ("buffered_append", "durable_append_1", "durable_append_8_threads", "verify")
    )
    print(f"{'operation':<34}{'audit':>14}{'raw':>16}   goal")
    print(
        f"{'buffered append (rec/s)':<34}{b['audit_per_s']:>14,.0f}{b['raw_write_per_s']:>16,.0f}"
        "   >= 50,000"
    )
    print(
        f"{'durable append, 1 caller (rec/s)':<34}{d['audit_per_s']:>14,.0f}"
        f"{d['raw_write_fdatasync_per_s']:>16,.0f}   >= 5,000"
    )
    print(f"{'  p99 latency (ms)':<34}{d['audit_p99_ms']:>14.3f}{d['raw_p99_ms']:>16.3f}   <= 2")
    print(
        f"{'durable append, 8 threads (rec/s)':<34}{d8['audit_per_s']:>14,.0f}"
        f"{d['raw_write_fdatasync_per_s']:>16,.0f}   (group commit)"
    )
    print(f"{'  p99 latency (ms)':<34}{d8['audit_p99_ms']:>14.3f}")
    print(
        f"{'verify (rec/s)':<34}{v['audit_records_per_s']:>14,.0f}"
        f"{v['raw_sha256_lines_per_s']:>16,.0f}   >= 100,000"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
