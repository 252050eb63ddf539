"""The orchestrator: decode, parse, fast path, optional deep path, roll-up."""

from __future__ import annotations

import ast
import hashlib
import io
import json
import time
import tokenize
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cellblock.assess._ast_pass import AstAnalyzer
from cellblock.assess._bandit import BanditAnalyzer
from cellblock.assess._config import AssessConfig
from cellblock.assess._deps import check_dependencies
from cellblock.assess._interface import AnalyzerResult, Finding, Level, Source
from cellblock.assess._semgrep import SemgrepAnalyzer

SCHEMA = "cellblock.assess/1"
_CONF_RANK = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True)
class Assessment:
    """The result of assessing one piece of code. ``level`` is never ``none`` when anything
    failed: parse errors and analyzer failures are findings that count."""

    level: Level
    findings: tuple[Finding, ...]
    code_sha256: str
    analyzers_run: tuple[str, ...]
    timings_ms: Mapping[str, float]
    tool_versions: Mapping[str, str]
    errors: Mapping[str, str] = field(default_factory=dict)
    dependencies: tuple[str, ...] = ()
    missing_dependencies: tuple[str, ...] = ()
    deep_ran: bool = False
    filename: str = "<untrusted>"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "filename": self.filename,
            "level": self.level.value,
            "code_sha256": self.code_sha256,
            "findings": [f.to_dict() for f in self.findings],
            "analyzers_run": list(self.analyzers_run),
            "deep_ran": self.deep_ran,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "tool_versions": dict(self.tool_versions),
            "errors": dict(self.errors),
            "dependencies": list(self.dependencies),
            "missing_dependencies": list(self.missing_dependencies),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    def to_sarif(self) -> dict[str, Any]:
        from cellblock.assess._sarif import to_sarif

        return to_sarif(self)

    def counts(self) -> dict[str, int]:
        out = {lv.value: 0 for lv in Level}
        for f in self.findings:
            out[f.severity.value] += 1
        return out


@dataclass
class _Work:
    """One piece of code on its way through the pipeline."""

    filename: str
    sha256: str
    source: Source | None
    tree: ast.Module | None
    findings: list[Finding] = field(default_factory=list)
    results: list[AnalyzerResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    imports: tuple[str, ...] = ()


def _fail_finding(rule: str, category: str, level: Level, msg: str, line: int = 0,
                  column: int = 0, source_line: str = "", tool: str = "cellblock") -> Finding:
    return Finding(tool=tool, rule_id=rule, category=category, severity=level,
                   confidence="high", cwe=None, line=line, column=column,
                   source_line=source_line, message=msg)


def _decode(code: str | bytes, cfg: AssessConfig) -> tuple[str | None, bytes, str | None]:
    """Return ``(text, raw_bytes, error)``. Bytes are decoded per PEP 263 (BOM or cookie)."""
    if isinstance(code, str):
        try:
            raw = code.encode("utf-8")
        except UnicodeEncodeError:
            raw = code.encode("utf-8", "surrogatepass")
            return None, raw, "the code contains lone surrogates and is not valid Unicode text"
        text: str | None = code
    else:
        raw = bytes(code)
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        except SyntaxError as exc:
            if "invalid or missing" in str(exc.msg):  # bad bytes in the first two lines
                return None, raw, ("the code is not valid utf-8 text and declares no other "
                                   "encoding (PEP 263)")
            return None, raw, f"the code declares an encoding Python cannot use: {exc.msg}"
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            return None, raw, f"the code is not valid {encoding} text: {exc}"
        if text.startswith("\ufeff"):
            text = text[1:]
    if len(raw) > cfg.max_code_bytes:
        return None, raw, (f"the code is {len(raw):,} bytes, over the {cfg.max_code_bytes:,}-byte "
                           "limit; it was not analyzed")
    return text, raw, None


def _prepare(code: str | bytes, cfg: AssessConfig, filename: str) -> _Work:
    t0 = time.perf_counter()
    text, raw, err = _decode(code, cfg)
    sha = hashlib.sha256(raw).hexdigest()
    if text is None:
        w = _Work(filename, sha, None, None)
        w.findings.append(_fail_finding("cb.parse.undecodable", "parse-error",
                                        cfg.parse_error_level, f"Not analyzed: {err}."))
        w.timings["parse"] = (time.perf_counter() - t0) * 1000
        return w
    lines = tuple(text.splitlines())
    source = Source(text, filename, lines)
    tree: ast.Module | None = None
    try:
        tree = ast.parse(text, filename=filename, feature_version=cfg.target_python)
    except SyntaxError as exc:
        ln = exc.lineno or 0
        target = ".".join(map(str, cfg.target_python))
        try:  # distinguish "not Python" from "newer Python than the sandbox runs"
            ast.parse(text, filename=filename)
            why = f"uses syntax that Python {target} (the sandbox) does not support"
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            why = f"does not parse as Python {target}"
        source_line = source.line(ln) if ln else ""
        source = Source(text, filename, lines)
        w = _Work(filename, sha, source, None)
        w.findings.append(_fail_finding(
            "cb.parse.syntax-error", "parse-error", cfg.parse_error_level,
            f"The code {why}: {exc.msg} (line {ln}). It cannot be assessed; nothing it does is "
            "known.", ln, (exc.offset or 0), source_line))
        w.timings["parse"] = (time.perf_counter() - t0) * 1000
        return w
    except (ValueError, RecursionError, MemoryError) as exc:
        w = _Work(filename, sha, source, None)
        w.findings.append(_fail_finding(
            "cb.parse.invalid", "parse-error", cfg.parse_error_level,
            f"The code cannot be parsed ({type(exc).__name__}: {exc}); it was not analyzed."))
        w.timings["parse"] = (time.perf_counter() - t0) * 1000
        return w
    w = _Work(filename, sha, source, tree)
    w.timings["parse"] = (time.perf_counter() - t0) * 1000
    return w


def _error_finding(cfg: AssessConfig, result: AnalyzerResult) -> Finding:
    return _fail_finding(
        f"cb.analyzer.{result.name}", "analyzer-error", cfg.analyzer_error_level,
        f"{result.name} failed, so its checks did not run: {result.error}",
        tool=result.name)


def _record(w: _Work, result: AnalyzerResult, ms: float) -> None:
    w.results.append(result)
    w.timings[result.name] = ms


def _fast(w: _Work, cfg: AssessConfig) -> None:
    if w.source is None or w.tree is None:
        return
    t0 = time.perf_counter()
    ast_an = AstAnalyzer(cfg.ast_timeout_s)
    try:
        res = ast_an.analyze_tree(w.source, w.tree)
        imports = res.extra.get("imports", ())
        w.imports = tuple(str(m) for m in imports)
    except (RecursionError, MemoryError, Exception) as exc:
        res = AnalyzerResult("ast", (), ast_an.version(),
                             error=f"the AST pass crashed: {type(exc).__name__}: {exc}")
    _record(w, res, (time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    res = BanditAnalyzer(cfg.bandit_timeout_s).analyze(w.source)
    _record(w, res, (time.perf_counter() - t0) * 1000)


def _effective(f: Finding, cfg: AssessConfig) -> Finding:
    if f.category in ("parse-error", "analyzer-error"):
        return f  # fail-closed findings keep the level the config assigned them
    lv = cfg.level_for(f.rule_id, f.category, f.severity)
    return f if lv == f.severity else replace(f, severity=lv)


def _all_findings(w: _Work, cfg: AssessConfig) -> list[Finding]:
    out = list(w.findings)
    for r in w.results:
        if r.error:
            out.append(_error_finding(cfg, r))
        out.extend(_effective(f, cfg) for f in r.findings)
    return out


def _rollup(findings: Iterable[Finding], cfg: AssessConfig) -> Level:
    floor = _CONF_RANK[cfg.min_confidence]
    level = Level.NONE
    for f in findings:
        counts = f.category in ("parse-error", "analyzer-error") or (
            _CONF_RANK.get(f.confidence, 1) >= floor)
        if counts and f.severity > level:
            level = f.severity
    return level


def _wants_deep(w: _Work, cfg: AssessConfig, mode: str) -> bool:
    if mode == "always":
        return w.source is not None
    if mode == "never" or w.source is None:
        return False
    return _rollup(_all_findings(w, cfg), cfg) >= cfg.deep_threshold


def _finish(w: _Work, cfg: AssessConfig, deep_ran: bool,
            available_modules: Iterable[str] | None) -> Assessment:
    findings = _all_findings(w, cfg)
    findings.sort(key=lambda f: (-f.severity.rank, f.line, f.column, f.tool, f.rule_id))
    deps, missing = check_dependencies(w.imports, available_modules)
    versions = {r.name: r.version for r in w.results}
    return Assessment(
        level=_rollup(findings, cfg),
        findings=tuple(findings),
        code_sha256=w.sha256,
        analyzers_run=tuple(r.name for r in w.results),
        timings_ms=dict(w.timings),
        tool_versions=versions,
        errors={r.name: r.error for r in w.results if r.error},
        dependencies=deps,
        missing_dependencies=missing,
        deep_ran=deep_ran,
        filename=w.filename,
    )


def _mode(cfg: AssessConfig, deep: bool | None) -> str:
    if deep is None:
        return cfg.deep
    return "always" if deep else "never"


def assess(
    code: str | bytes,
    *,
    config: AssessConfig | None = None,
    deep: bool | None = None,
    filename: str = "<untrusted>",
    available_modules: Iterable[str] | None = None,
) -> Assessment:
    """Assess untrusted Python source. Never raises for bad input: it fails closed.

    ``deep=None`` follows ``config.deep``; ``True``/``False`` force the Semgrep path on or off.
    ``available_modules`` describes the sandbox image for the dependency check (default
    :data:`IMAGE_MODULES`).
    """
    cfg = config or AssessConfig()
    total = time.perf_counter()
    w = _prepare(code, cfg, filename)
    _fast(w, cfg)
    deep_ran = False
    if _wants_deep(w, cfg, _mode(cfg, deep)):
        assert w.source is not None
        t0 = time.perf_counter()
        sg = SemgrepAnalyzer(cfg.semgrep_binary, cfg.semgrep_timeout_s, cfg.semgrep_experimental)
        _record(w, sg.analyze(w.source), (time.perf_counter() - t0) * 1000)
        deep_ran = True
    w.timings["total"] = (time.perf_counter() - total) * 1000
    return _finish(w, cfg, deep_ran, available_modules)


def assess_many(
    codes: Mapping[str, str | bytes],
    *,
    config: AssessConfig | None = None,
    deep: bool | None = None,
    available_modules: Iterable[str] | None = None,
) -> dict[str, Assessment]:
    """Assess many pieces of code (keyed by filename); Semgrep runs once for all of them."""
    cfg = config or AssessConfig()
    mode = _mode(cfg, deep)
    works: dict[str, _Work] = {}
    for name, code in codes.items():
        t0 = time.perf_counter()
        w = _prepare(code, cfg, name)
        _fast(w, cfg)
        w.timings["total"] = (time.perf_counter() - t0) * 1000
        works[name] = w
    need = {n: w for n, w in works.items() if _wants_deep(w, cfg, mode)}
    if need:
        t0 = time.perf_counter()
        sg = SemgrepAnalyzer(cfg.semgrep_binary, cfg.semgrep_timeout_s, cfg.semgrep_experimental)
        results = sg.scan_many({n: w.source for n, w in need.items() if w.source is not None})
        per = (time.perf_counter() - t0) * 1000 / len(need)  # amortized share of the one call
        for n, res in results.items():
            _record(need[n], res, per)
    return {n: _finish(w, cfg, n in need, available_modules) for n, w in works.items()}
