"""SARIF 2.1.0 output, so assessments load into code-scanning tools."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cellblock import __version__
from cellblock.assess._interface import Level

if TYPE_CHECKING:
    from cellblock.assess._core import Assessment

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {Level.CRITICAL: "error", Level.HIGH: "error", Level.MEDIUM: "warning",
                Level.LOW: "note", Level.NONE: "none"}
# GitHub code scanning ranks security results by this numeric property.
_SECURITY_SEVERITY = {Level.CRITICAL: "9.5", Level.HIGH: "8.0", Level.MEDIUM: "5.5",
                      Level.LOW: "3.0", Level.NONE: "0.0"}


def _uri(filename: str) -> str:
    if filename in ("<untrusted>", "<stdin>", "-", ""):
        return "untrusted.py"
    return filename.replace("\\", "/")


def to_sarif(a: Assessment) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for f in a.findings:
        rid = f"{f.tool}/{f.rule_id}"
        if rid not in rules:
            tags = ["security", f.category]
            if f.cwe:
                tags.append(f"external/cwe/cwe-{f.cwe}")
            rules[rid] = {
                "id": rid,
                "name": f.rule_id,
                "shortDescription": {"text": f.message.split(" (")[0][:200] or f.rule_id},
                "defaultConfiguration": {"level": _SARIF_LEVEL[f.severity]},
                "properties": {"tags": tags, "security-severity":
                               _SECURITY_SEVERITY[f.severity]},
            }
        region: dict[str, Any] = {"startLine": max(f.line, 1)}
        if f.column >= 1:
            region["startColumn"] = f.column
        if f.source_line:
            region["snippet"] = {"text": f.source_line}
        results.append({
            "ruleId": rid,
            "ruleIndex": list(rules).index(rid),
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f.message},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": _uri(a.filename)},
                "region": region,
            }}],
            "properties": {"tool": f.tool, "category": f.category,
                           "severity": f.severity.value, "confidence": f.confidence,
                           "cwe": f.cwe},
        })
    notifications = [
        {"level": "error", "message": {"text": f"{name}: {msg}"}}
        for name, msg in a.errors.items()
    ]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "cellblock-assess",
                "version": __version__,
                "informationUri": "https://example.invalid/cellblock/docs/assess.md",
                "rules": list(rules.values()),
            }},
            "invocations": [{
                "executionSuccessful": not a.errors,
                "toolExecutionNotifications": notifications,
            }],
            "artifacts": [{"location": {"uri": _uri(a.filename)},
                           "hashes": {"sha-256": a.code_sha256}}],
            "results": results,
            "properties": {"level": a.level.value, "analyzers": list(a.analyzers_run),
                           "toolVersions": dict(a.tool_versions),
                           "dependencies": list(a.dependencies),
                           "missingDependencies": list(a.missing_dependencies)},
        }],
    }
