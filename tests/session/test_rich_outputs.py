"""Rich outputs: the last expression's value, and figures as PNG artifacts."""

from __future__ import annotations

import struct
import textwrap
import zlib
from pathlib import Path

import pytest

from cellblock.session import Session

pytestmark = pytest.mark.docker


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking signature and CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    body = data[16 : 16 + 13]
    (crc,) = struct.unpack(">I", data[29:33])
    assert zlib.crc32(b"IHDR" + body) == crc
    width, height = struct.unpack(">II", body[:8])
    return width, height


def test_value_is_capped_and_none_is_not_shown(runc_policy: Path, audit_dir: Path) -> None:
    from cellblock.session import SessionLimits

    with Session(runc_policy, audit_dir=audit_dir, limits=SessionLimits(value_bytes=100)) as s:
        assert s.run("None").value is None
        assert s.run("x = 3").value is None
        big = s.run("'y' * 10000")
        assert big.value is not None and len(big.value) == 100 and big.value_truncated


def test_without_matplotlib_no_figures(runc_policy: Path, audit_dir: Path) -> None:
    with Session(runc_policy, audit_dir=audit_dir) as s:
        step = s.run("import importlib.util\nimportlib.util.find_spec('matplotlib') is None")
        if step.value != "True":
            pytest.skip("this image has matplotlib; the data-image test covers figures")
        assert s.run("print('no charts here')").artifacts == ()


# A stand-in pyplot with the three calls the runner uses (get_fignums, figure, close), drawing
# real PNGs with zlib: it exercises the runner's figure path on the base image. The real
# matplotlib is tested below when the engine has the data image.
FAKE_PYPLOT = textwrap.dedent(
    """
    import sys, types, zlib, struct
    def _png(w, h):
        def chunk(kind, body):
            return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))
        raw = b''.join(b'\\x00' + b'\\xff\\x00\\x00' * w for _ in range(h))
        return (b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
                + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
    class Figure:
        def __init__(self, w, h): self.w, self.h = w, h
        def savefig(self, buf, format='png'): buf.write(_png(self.w, self.h))
    plt = types.ModuleType('matplotlib.pyplot')
    plt._figs = {}
    plt.get_fignums = lambda: sorted(plt._figs)
    plt.figure = lambda num: plt._figs[num]
    def close(fig):
        if fig == 'all': plt._figs.clear()
        else: plt._figs.pop(next(k for k, v in plt._figs.items() if v is fig))
    plt.close = close
    sys.modules['matplotlib.pyplot'] = plt
    """
)


def test_figures_come_back_as_png(tmp_path: Path, audit_dir: Path) -> None:
    from tests.session.conftest import policy_for

    # the stand-in writes sys.modules, which the assessment rightly rates critical
    policy = policy_for(tmp_path, "runc", allow_all=True)
    with Session(policy, audit_dir=audit_dir) as s:
        setup = s.run(FAKE_PYPLOT)
        assert (setup.status, setup.artifacts) == ("ok", ()), setup
        step = s.run("plt._figs[1] = Figure(64, 48)\nplt._figs[2] = Figure(10, 20)")
        assert step.status == "ok", step.stderr
        assert [a.name for a in step.artifacts] == ["figure-2-1.png", "figure-2-2.png"]
        assert [png_size(a.data) for a in step.artifacts] == [(64, 48), (10, 20)]
        assert all(a.media_type == "image/png" and a.kind == "figure" for a in step.artifacts)
        assert s.run("len(plt._figs)").value == "0"  # saved figures are closed
        assert s.run("1").artifacts == ()


def test_csv_summary_and_chart_on_the_data_image(
    runc_policy: Path, audit_dir: Path, tmp_path: Path
) -> None:
    """The README's three steps: an uploaded CSV loaded with pandas, a summary, a chart."""
    # the pipeline builds the data image on first use when the engine lacks it
    csv = tmp_path / "sales.csv"
    csv.write_text("month,region,sales\n1,north,10\n2,north,12\n1,south,7\n2,south,9\n")
    with Session(runc_policy, audit_dir=audit_dir, image="data") as s:
        s.upload({"sales.csv": csv})
        load = s.run("import pandas as pd\ndf = pd.read_csv('sales.csv')\nlen(df)")
        assert (load.status, load.value) == ("ok", "4"), load
        summary = s.run("df.groupby('region')['sales'].sum().to_dict()")
        assert summary.value == "{'north': 22, 'south': 16}", summary
        chart = s.run(
            "import matplotlib.pyplot as plt\n"
            "fig = plt.figure(figsize=(4, 3), dpi=50)\nplt.plot(df['month'], df['sales'])\n"
        )
        assert chart.status == "ok", chart.stderr
        assert [png_size(a.data) for a in chart.artifacts] == [(200, 150)]
        shown = s.run("plt.figure(figsize=(2, 2), dpi=50)\nplt.bar([1], [2])\nplt.show()")
        assert [png_size(a.data) for a in shown.artifacts] == [(100, 100)]
