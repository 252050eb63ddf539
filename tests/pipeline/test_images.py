"""The pipeline on image profiles: `image=` / `--image`, the policy's permission, and the
dependency check on the image the run will use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cellblock.pipeline import Pipeline
from cellblock.policy import Policy, PolicyError, load_preset

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CODE = "import numpy as np\nimport pandas as pd\nprint(int(np.arange(5).sum()), len(pd.DataFrame({'a': [1, 2]})))\n"


def _policy(images: list[str], runtime: str = "runc") -> Policy:
    data = load_preset("strict").to_dict()
    for profile in data["profiles"].values():
        profile["runtime"] = runtime
        profile["images"] = images
        profile["memory"] = max(profile["memory"], 512 * 1024 * 1024)
    return Policy.from_dict(data)


def test_pandas_is_missing_on_base_and_present_on_data(tmp_path: Path, data_image) -> None:  # type: ignore[no-untyped-def]
    with Pipeline(_policy(["data"]), audit_dir=tmp_path / "audit") as p:
        on_data = p.execute(CODE, image="data")
        assert on_data.assessment is not None and on_data.assessment.missing_dependencies == ()
        assert on_data.assessment.level.value == "none"
        assert on_data.image == "data" and on_data.execution is not None
        assert on_data.execution.stdout.strip() == "10 2", on_data.execution.stderr
        on_base = p.execute(CODE)
        assert on_base.assessment is not None
        assert on_base.assessment.missing_dependencies == ("numpy", "pandas")
        assert on_base.image == "base"
    from tests.pipeline.test_pipeline import records

    decided = [r["payload"]["image"] for r in records(tmp_path / "audit") if r["type"] == "decision"]
    started = [
        r["payload"]["image"] for r in records(tmp_path / "audit") if r["type"] == "execution.started"
    ]
    assert decided == started == ["data", "base"]


def test_an_image_the_profile_does_not_permit_is_refused(tmp_path: Path) -> None:
    with Pipeline(_policy([]), audit_dir=tmp_path / "audit") as p, pytest.raises(
        PolicyError, match="does not permit the image 'data'"
    ):
        p.execute("print(1)", image="data")


def test_cli_run_on_the_data_image(tmp_path: Path, data_image) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text(_policy(["data"]).to_yaml())
    program = tmp_path / "prog.py"
    program.write_text(CODE)
    env = {**os.environ, "CELLBLOCK_AUDIT_DIR": str(tmp_path / "audit")}
    run = [sys.executable, "-m", "cellblock.cli", "run", str(program), "--policy", str(policy)]
    proc = subprocess.run([*run, "--image", "data", "--json"], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["image"] == "data" and out["stdout"].strip() == "10 2"
    assert out["assessment"]["missing_dependencies"] == []
    bad = subprocess.run([*run, "--image", "nope"], capture_output=True, text=True, env=env,
                         timeout=600)
    assert bad.returncode == 64 and "no image profile named 'nope'" in bad.stderr
