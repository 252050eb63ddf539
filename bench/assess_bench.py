"""Benchmark of cellblock.assess: detection, false positives and latency.

Prints, per analyzer (ast, bandit, semgrep) and combined, the detection rate on the dangerous
corpus (flagged at medium or above) and the false-positive rate on the benign corpus, then the
latency p50/p95 of the fast and deep paths on a 200-line snippet next to a baseline measured in
the same run (a bare ``ast.parse`` of the snippet). Writes bench/results/assess.json.

    .venv/bin/python bench/assess_bench.py [--runs N]
"""

from __future__ import annotations

import argparse
import ast
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cellblock.assess import Level, assess, assess_many

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
OUT = ROOT / "bench" / "results" / "assess.json"
TOOLS = ("ast", "bandit", "semgrep")


def snippet_200() -> str:
    """Exactly 200 lines of ordinary assistant-style code, taken from the benign corpus."""
    lines: list[str] = []
    for p in sorted((CORPUS / "benign").glob("*.py")):
        body = [ln for ln in p.read_text().splitlines() if not ln.startswith("#")]
        if len(lines) + len(body) + 1 > 200:
            continue
        lines += [*body, ""]
    lines += ["pass"] * (200 - len(lines))
    text = "\n".join(lines[:200]) + "\n"
    ast.parse(text)
    return text


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def timed(fn: Callable[[], object], runs: int, warmup: int = 2) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": round(statistics.median(samples), 2), "p95_ms": round(pct(samples, 0.95), 2),
            "runs": runs}


def rates() -> dict[str, dict[str, float | int]]:
    files = {str(p): p.read_bytes() for p in sorted(CORPUS.glob("*/*.py"))}
    t0 = time.perf_counter()
    res = assess_many(files, deep=True)
    sweep_s = time.perf_counter() - t0
    out: dict[str, dict[str, float | int]] = {}
    for tool in (*TOOLS, "fast (ast+bandit)", "combined"):
        det = fp = n_d = n_b = 0
        for name, a in res.items():
            if tool == "combined":
                lv = a.level
            else:
                pick = ("ast", "bandit") if tool.startswith("fast") else (tool,)
                lv = max((f.severity for f in a.findings if f.tool in pick), default=Level.NONE)
            if "/dangerous/" in name:
                n_d += 1
                det += lv >= Level.MEDIUM
            elif "/benign/" in name:  # review samples are medium by design
                n_b += 1
                fp += lv >= Level.MEDIUM
        out[tool] = {"detection": round(det / n_d, 4), "detected": det, "dangerous": n_d,
                     "false_positive_rate": round(fp / n_b, 4), "false_positives": fp,
                     "benign": n_b}
    out["_sweep"] = {"seconds": round(sweep_s, 2), "files": len(files)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    code = snippet_200()
    risky = code + "import os\nos.system('id')\n"
    latency = {
        "baseline_ast_parse": timed(lambda: ast.parse(code), args.runs),
        "fast_path": timed(lambda: assess(code, deep=False), args.runs),
        "deep_path": timed(lambda: assess(code, deep=True), max(5, args.runs // 3)),
        "auto_risky (fast+deep)": timed(lambda: assess(risky), max(5, args.runs // 3)),
    }
    one = assess(code, deep=True)
    per_analyzer = {k: round(v, 2) for k, v in one.timings_ms.items()}
    r = rates()
    print(f"{'analyzer':<20}{'detection':>10}{'FP rate':>10}")
    for tool, v in r.items():
        if not tool.startswith("_"):
            print(f"{tool:<20}{v['detection']:>10.1%}{v['false_positive_rate']:>10.1%}"
                  f"   ({v['detected']}/{v['dangerous']}, {v['false_positives']}/{v['benign']})")
    print(f"\nlatency on a 200-line snippet ({args.runs} runs):")
    for k, v in latency.items():
        print(f"  {k:<24} p50 {v['p50_ms']:8.2f} ms   p95 {v['p95_ms']:8.2f} ms")
    print(f"  one deep run, per analyzer: {per_analyzer}")
    goals = {"fast_p50_le_25ms": latency["fast_path"]["p50_ms"] <= 25,
             "deep_p50_le_300ms": latency["deep_path"]["p50_ms"] <= 300,
             "detection_ge_95pct": float(r["combined"]["detection"]) >= 0.95,
             "zero_false_positives": r["combined"]["false_positives"] == 0}
    print(f"goals: {goals}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "python": sys.version.split()[0], "machine": platform.machine(),
        "tool_versions": dict(one.tool_versions), "rates": r, "latency": latency,
        "per_analyzer_ms_one_deep_run": per_analyzer, "goals": goals,
    }, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
