"""Config as policy data, level overrides, and the dependency check."""

from __future__ import annotations

import pytest

from cellblock.assess import (
    IMAGE_MODULES,
    AssessConfig,
    AssessError,
    Level,
    assess,
    check_dependencies,
)
from cellblock.errors import CellblockError


def test_defaults_and_round_trip() -> None:
    cfg = AssessConfig()
    assert cfg.deep == "auto"
    assert cfg.category_levels["escape"] == Level.CRITICAL
    assert cfg.category_levels["ffi"] == Level.CRITICAL
    assert cfg.rule_levels["cb.dynamic-code.obfuscated"] == Level.CRITICAL
    assert AssessConfig.from_dict(cfg.to_dict()) == cfg


def test_from_dict_merges_over_defaults() -> None:
    cfg = AssessConfig.from_dict({"rule_levels": {"B404": "medium"}, "deep": "never"})
    assert cfg.rule_levels["B404"] == Level.MEDIUM
    assert cfg.rule_levels["cb.dynamic-code.obfuscated"] == Level.CRITICAL


@pytest.mark.parametrize("data", [
    {"deep": "sometimes"}, {"nope": 1}, {"rule_levels": {"x": "severe"}},
    {"category_levels": {"made-up": "low"}}, {"parse_error_level": "none"},
    {"max_code_bytes": "many"},
])
def test_invalid_config_raises_assess_error(data: dict[str, object]) -> None:
    with pytest.raises(AssessError):
        AssessConfig.from_dict(data)
    assert issubclass(AssessError, CellblockError)


def test_rule_and_category_overrides_change_the_level() -> None:
    code = "import os\nos.system('ls')\n"
    assert assess(code, deep=False).level == Level.HIGH
    quiet = AssessConfig.from_dict({"rule_levels": {"cb.process.spawn": "low", "B605": "low",
                                                    "B607": "low", "B404": "low"}})
    assert assess(code, config=quiet, deep=False).level == Level.LOW
    loud = AssessConfig.from_dict({"category_levels": {"process": "critical"}})
    assert assess(code, config=loud, deep=False).level == Level.CRITICAL


def test_min_confidence_filters_rollup() -> None:
    code = "x = eval('1 + 1')\n"  # constant exec: medium, medium confidence in the AST pass
    strict = AssessConfig(min_confidence="high",
                          rule_levels={"B307": Level.LOW})
    a = assess(code, config=strict, deep=False)
    assert a.level < Level.MEDIUM and a.findings


def test_image_modules_and_dependency_check() -> None:
    assert "json" in IMAGE_MODULES and "os" in IMAGE_MODULES
    assert "tkinter" not in IMAGE_MODULES and "winreg" not in IMAGE_MODULES
    deps, missing = check_dependencies(["numpy.linalg", "json", "tkinter", "pandas"])
    assert deps == ("numpy", "pandas")
    assert missing == ("numpy", "pandas", "tkinter")
    _, missing2 = check_dependencies(["numpy"], available_modules=IMAGE_MODULES | {"numpy"})
    assert missing2 == ()


def test_assess_reports_dependencies() -> None:
    a = assess("import numpy as np\nfrom sklearn import svm\nimport json\nfrom . import local\n")
    assert a.dependencies == ("numpy", "sklearn")
    assert a.missing_dependencies == ("numpy", "sklearn")
    b = assess("import numpy\n", available_modules=IMAGE_MODULES | {"numpy"})
    assert b.missing_dependencies == () and b.dependencies == ("numpy",)
    c = assess("m = __import__('requests')\n")
    assert "requests" in c.dependencies
