"""Image profiles: the data image built offline from hash-checked wheels, what it records, runs
on it, the dependency check per image, and the CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from cellblock.packages import PipResolver, WheelCache
from cellblock.sandbox import Limits
from cellblock.sandbox.interface import RunRequest
from cellblock.sandbox.profiles import (
    BUILD_PIP,
    DATA,
    DATA_MODULES,
    ImageProfile,
    build_profile_image,
    inspect_profile_image,
    profile_tag,
)

from .._cli import run_cellblock as cellblock

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TYPICAL = """\
import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
from sklearn.linear_model import LinearRegression
from scipy import stats

df = pd.DataFrame({"x": np.arange(20.0)})
df["y"] = 3 * df.x + 1
model = LinearRegression().fit(df[["x"]], df.y)
fig, ax = plt.subplots()
ax.plot(df.x, df.y)
fig.savefig("chart.png")
print(round(float(model.coef_[0]), 6), round(float(stats.pearsonr(df.x, df.y)[0]), 6))
print(plt.get_backend())
"""


def test_data_image_records_every_distribution(data_image) -> None:  # type: ignore[no-untyped-def]
    assert data_image.present and data_image.current
    assert data_image.tag == profile_tag(DATA) and "-data-" in data_image.tag
    pins = {Requirement(r).name: str(Requirement(r).specifier)[2:] for r in DATA.requirements}
    recorded = {c.name: c.version for c in data_image.components}
    assert recorded == pins
    assert all(len(c.sha256) == 64 for c in data_image.components)
    assert data_image.sbom["bomFormat"] == "CycloneDX"
    assert set(data_image.modules) == DATA_MODULES


def test_typical_data_code_runs_on_the_data_image(data_backend, runtime: str) -> None:  # type: ignore[no-untyped-def]
    limits = Limits(runtime=runtime, timeout_s=120, memory_bytes=768 * 1024 * 1024)
    result = data_backend.run(RunRequest(code=TYPICAL, limits=limits))
    assert result.status.value == "ok", result.stderr
    assert result.stdout.split() == ["3.0", "1.0", "agg"] or result.stdout.split()[2] == "Agg"


def test_the_image_holds_its_sbom_file(data_backend, data_image) -> None:  # type: ignore[no-untyped-def]
    code = "print(open('/opt/cellblock/sbom.cdx.json').read())"
    result = data_backend.run(RunRequest(code=code, limits=Limits(runtime="runc", timeout_s=60)))
    assert json.loads(result.stdout)["components"] == data_image.sbom["components"]


def test_image_info_cli_shows_the_packages(data_image) -> None:  # type: ignore[no-untyped-def]
    proc = cellblock("image", "info", "--profile", "data", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["current"] and {c["name"] for c in info["components"]} >= {"numpy", "pandas"}
    text = cellblock("image", "info", "--profile", "data").stdout
    assert "pandas" in text and "sha256:" in text and "CycloneDX" in text


def test_unknown_profile_is_a_usage_error() -> None:
    proc = cellblock("image", "info", "--profile", "no-such-profile")
    assert proc.returncode == 64
    assert "no image profile named 'no-such-profile'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_user_profile_builds_from_a_wheelhouse_with_the_index_unreachable(
    docker_client, tmp_path: Path, dead_index_env: dict[str, str]  # type: ignore[no-untyped-def]
) -> None:
    house = tmp_path / "house"
    house.mkdir()
    fetch = PipResolver(cache=WheelCache(tmp_path / "cache"))
    for spec in ("tabulate==0.9.0", BUILD_PIP):
        for d in fetch.resolve([spec]).distributions:
            shutil.copyfile(d.path, house / d.filename)
    profile = ImageProfile(
        f"tiny-{os.getpid()}", ("tabulate==0.9.0",), ("tabulate",), description="test"
    )
    try:
        info = build_profile_image(
            docker_client, profile, progress=None, wheelhouse=house, env=dead_index_env
        )
        assert info.current and [c.name for c in info.components] == ["tabulate"]
        assert info.modules == ("tabulate",)
        from cellblock.sandbox.docker import DockerBackend

        backend = DockerBackend(client=docker_client, image=info.tag)
        code = "import tabulate; print(tabulate.__version__)"
        result = backend.run(RunRequest(code=code, limits=Limits(runtime="runc", timeout_s=60)))
        assert result.stdout.strip() == "0.9.0", result.stderr
        again = inspect_profile_image(docker_client, profile)
        assert again.image_id == info.image_id
    finally:
        import contextlib

        import docker.errors

        with contextlib.suppress(docker.errors.APIError):
            docker_client.images.remove(profile_tag(profile), force=True)


def test_warm_runner_preloads_the_profile_modules(data_backend) -> None:  # type: ignore[no-untyped-def]
    code = "import sys; print('pandas' in sys.modules, 'numpy' in sys.modules)"
    roomy = Limits(runtime="runc", timeout_s=60, memory_bytes=512 * 1024 * 1024)
    assert data_backend.run(RunRequest(code=code, limits=roomy)).stdout.split() == ["True", "True"]
    # under a small memory limit the preload is skipped (it would count against the program)
    small = Limits(runtime="runc", timeout_s=60, memory_bytes=96 * 1024 * 1024)
    out = data_backend.run(RunRequest(code=code, limits=small))
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_sandbox_takes_an_image_profile(data_image) -> None:  # type: ignore[no-untyped-def]
    from cellblock.sandbox import Sandbox

    with Sandbox(Limits(runtime="runc", timeout_s=60), image="data", reap=False) as sb:
        out = sb.run("import numpy; print(numpy.__version__)")
    assert out.stdout.strip() == "2.4.6", out.stderr
