"""The assessment's dependency check on both images (no engine needed: the data profile's
module list ships with cellblock and a docker test checks it against the built image)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cellblock._images import recheck_dependencies
from cellblock.assess import assess
from cellblock.sandbox.profiles import BASE, DATA, image_modules

CODE = "import numpy as np\nimport pandas\nimport tkinter\nimport json\nfrom sklearn import svm\n"


def test_missing_depends_on_the_image() -> None:
    on_base = assess(CODE, deep=False, available_modules=image_modules(BASE))
    on_data = assess(CODE, deep=False, available_modules=image_modules(DATA))
    assert on_base.missing_dependencies == ("numpy", "pandas", "sklearn", "tkinter")
    assert on_data.missing_dependencies == ("tkinter",)  # Debian's python3-tk is not in any image
    assert on_data.dependencies == on_base.dependencies == ("numpy", "pandas", "sklearn")


def test_recheck_for_another_image_is_exact() -> None:
    on_base = assess(CODE, deep=False, available_modules=image_modules(BASE))
    moved = recheck_dependencies(on_base, image_modules(DATA))
    assert moved.missing_dependencies == ("tkinter",)
    assert recheck_dependencies(moved, image_modules(BASE)) == on_base


def test_assess_cli_image_flag(tmp_path: Path) -> None:
    program = tmp_path / "p.py"
    program.write_text(CODE)
    run = [sys.executable, "-m", "cellblock.cli", "assess", str(program), "--format", "json"]
    base = json.loads(subprocess.run(run, capture_output=True, text=True).stdout)
    data = json.loads(
        subprocess.run([*run, "--image", "data"], capture_output=True, text=True).stdout
    )
    assert "pandas" in base["missing_dependencies"] and data["missing_dependencies"] == ["tkinter"]
