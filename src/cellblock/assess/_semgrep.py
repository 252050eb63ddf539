"""Semgrep OSS on the rules shipped in ``cellblock/assess/rules``, offline.

Semgrep is an external program: it runs with metrics and version checks off, ``# nosemgrep``
disabled, on a temporary copy of the code named ``*.py`` (Semgrep skips other suffixes without
saying so). Anything short of a clean run (missing binary, non-zero exit, unparsable output,
a reported error, the file not in the scanned list, a timeout) is an analyzer failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from cellblock.assess._interface import (
    Analyzer,
    AnalyzerResult,
    Confidence,
    Finding,
    Level,
    Source,
)

TOOL = "semgrep"
_version_cache: dict[str, str] = {}


def rules_dir() -> Path:
    """Directory of the shipped rules (a real directory: the package is installed unzipped)."""
    return Path(str(resources.files("cellblock.assess") / "rules"))


def find_semgrep(explicit: str | None = None) -> str | None:
    """The Semgrep binary: ``explicit``, else next to the interpreter, else on PATH."""
    if explicit is not None:
        return explicit
    beside = Path(sys.executable).parent / "semgrep"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("semgrep")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "SEMGREP_ENABLE_VERSION_CHECK": "0",
        "SEMGREP_SEND_METRICS": "off",
        "SEMGREP_IN_DOCKER": "0",
        "NO_COLOR": "1",
    })
    # a registry token or app URL in the caller's environment must not turn on network use
    for key in ("SEMGREP_APP_TOKEN", "SEMGREP_APP_URL", "SEMGREP_RULES"):
        env.pop(key, None)
    return env


class SemgrepAnalyzer(Analyzer):
    """The deep path. ``scan_many`` runs one Semgrep process over many sources."""

    name = TOOL

    def __init__(
        self, binary: str | None = None, timeout_s: float = 30.0, experimental: bool = True
    ) -> None:
        self.binary = find_semgrep(binary)
        self.timeout_s = timeout_s
        self.experimental = experimental

    def version(self) -> str:
        # Taken from the JSON of a scan: asking `semgrep --version` costs a second of start-up.
        if self.binary is None:
            return "unavailable"
        return _version_cache.get(self.binary, "unknown")

    def command(self, targets: list[str]) -> list[str]:
        assert self.binary is not None
        cmd = [self.binary, "scan"]
        if self.experimental:
            cmd.append("--experimental")
        cmd += [
            "--config", str(rules_dir()),
            "--metrics=off", "--disable-version-check", "--disable-nosem",
            "--json", "--quiet", "--no-git-ignore",
            "--timeout", str(max(1, int(self.timeout_s))),
            *targets,
        ]
        return cmd

    def analyze(self, source: Source) -> AnalyzerResult:
        return self.scan_many({"code": source})["code"]

    def scan_many(self, sources: Mapping[str, Source]) -> dict[str, AnalyzerResult]:
        """Scan several sources in one Semgrep call; keys are caller-chosen labels."""
        version = self.version()

        def fail(msg: str) -> dict[str, AnalyzerResult]:
            return {k: AnalyzerResult(TOOL, (), version, error=msg) for k in sources}

        if self.binary is None:
            return fail("Semgrep is not installed: the deep path cannot run")
        with tempfile.TemporaryDirectory(prefix="cellblock-semgrep-") as tmp:
            names: dict[str, str] = {}
            for i, (key, src) in enumerate(sources.items()):
                fname = f"code_{i}.py"  # Semgrep ignores files that do not end in .py
                Path(tmp, fname).write_text(src.text, encoding="utf-8")
                names[fname] = key
            try:
                proc = subprocess.run(
                    self.command(sorted(names)), cwd=tmp, capture_output=True, text=True,
                    timeout=self.timeout_s, env=_env(), check=False, stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired:
                return fail(f"Semgrep did not finish within {self.timeout_s:g} s")
            except OSError as exc:
                return fail(f"Semgrep could not start: {exc.strerror or exc}")
        if proc.returncode not in (0, 1):
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
            return fail(f"Semgrep exited with status {proc.returncode}: {tail}")
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            return fail("Semgrep produced output that is not JSON")
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            return fail("Semgrep produced JSON without results")
        if self.binary is not None and isinstance(data.get("version"), str):
            version = _version_cache[self.binary] = data["version"]
        return self._parse(data, names, sources, version)

    def _parse(
        self, data: dict[str, Any], names: dict[str, str], sources: Mapping[str, Source],
        version: str,
    ) -> dict[str, AnalyzerResult]:
        scanned = {Path(p).name for p in data.get("paths", {}).get("scanned", [])}
        errors: dict[str, list[str]] = {k: [] for k in sources}
        global_errors = []
        for err in data.get("errors", []):
            msg = str(err.get("message", err.get("type", "error"))).strip().splitlines()[0][:300]
            path = Path(str(err.get("path", ""))).name
            if path in names:
                errors[names[path]].append(f"{err.get('type', 'error')}: {msg}")
            else:  # a rule or engine error taints every result
                global_errors.append(f"{err.get('type', 'error')}: {msg}")
        findings: dict[str, list[Finding]] = {k: [] for k in sources}
        for r in data["results"]:
            fname = Path(str(r.get("path", ""))).name
            key = names.get(fname)
            if key is None:
                continue
            extra = r.get("extra", {})
            meta = extra.get("metadata", {}) or {}
            line = int(r.get("start", {}).get("line", 1))
            cwe = meta.get("cwe")
            findings[key].append(Finding(
                tool=TOOL,
                rule_id=str(r.get("check_id", "unknown")).rsplit(".", 1)[-1],
                category=str(meta.get("category", "misc")),
                severity=Level.parse(str(meta.get("level", "medium"))),
                confidence=confidence(str(meta.get("confidence", "medium"))),
                cwe=int(cwe) if isinstance(cwe, int | str) and str(cwe).isdigit() else None,
                line=line,
                column=int(r.get("start", {}).get("col", 1)),
                source_line=sources[key].line(line)[:300],
                message=str(extra.get("message", "")).strip(),
            ))
        out = {}
        for fname, key in names.items():
            errs = global_errors + errors[key]
            if fname not in scanned:
                errs.append("Semgrep did not scan the file")
            out[key] = AnalyzerResult(
                TOOL, tuple(findings[key]), version, error="; ".join(errs) if errs else None
            )
        return out


def confidence(value: str) -> Confidence:
    v = value.lower()
    return v if v in ("low", "medium", "high") else "medium"  # type: ignore[return-value]
