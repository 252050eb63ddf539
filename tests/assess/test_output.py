"""Assessment serialisation: dict/JSON round trip and SARIF 2.1.0 structure."""

from __future__ import annotations

import json

from cellblock.assess import Assessment, Finding, Level, assess

CODE = "import os\nos.system('id')  # run\nimport ctypes\n"


def _deep() -> Assessment:
    return assess(CODE, deep=True, filename="sample.py")


def test_to_dict_and_json() -> None:
    a = _deep()
    d = json.loads(a.to_json())
    assert d["level"] == "critical" and d["schema"] == "cellblock.assess/1"
    assert set(d["timings_ms"]) >= {"parse", "ast", "bandit", "semgrep", "total"}
    assert set(d["tool_versions"]) == {"ast", "bandit", "semgrep"}
    assert d["deep_ran"] is True and d["errors"] == {}
    f = d["findings"][0]
    assert set(f) == {"tool", "rule_id", "category", "severity", "confidence", "cwe", "line",
                      "column", "source_line", "message"}
    assert Finding.from_dict(f) == a.findings[0]
    sev = [Level(x["severity"]) for x in d["findings"]]
    assert sev == sorted(sev, reverse=True)


def test_sarif_structure() -> None:
    a = _deep()
    s = a.to_sarif()
    json.dumps(s)  # serialisable
    assert s["version"] == "2.1.0" and "sarif" in s["$schema"]
    assert len(s["runs"]) == 1
    run = s["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] and isinstance(driver["rules"], list)
    rule_ids = [r["id"] for r in driver["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    assert run["invocations"][0]["executionSuccessful"] is True
    assert len(run["results"]) == len(a.findings)
    for r in run["results"]:
        assert r["message"]["text"]
        assert r["level"] in ("none", "note", "warning", "error")
        assert rule_ids[r["ruleIndex"]] == r["ruleId"]
        loc = r["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"] == "sample.py"
        assert loc["region"]["startLine"] >= 1
        assert loc["region"].get("startColumn", 1) >= 1
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"]
        float(rule["properties"]["security-severity"])


def test_sarif_reports_analyzer_failures() -> None:
    a = assess(b"\xff\xfe", filename="bad.py")
    s = a.to_sarif()
    assert s["runs"][0]["results"][0]["level"] == "error"


def test_level_ordering() -> None:
    order = [Level.NONE, Level.LOW, Level.MEDIUM, Level.HIGH, Level.CRITICAL]
    assert sorted(reversed(order)) == order
    assert Level.HIGH > Level.MEDIUM and Level.LOW <= Level.LOW and Level.CRITICAL >= Level.NONE
    assert Level.MEDIUM.bump() == Level.HIGH and Level.CRITICAL.bump() == Level.CRITICAL
    assert max(Level.LOW, Level.HIGH) == Level.HIGH
    assert Level.parse("High") == Level.HIGH and Level("low") == "low"
