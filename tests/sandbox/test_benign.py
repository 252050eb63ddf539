"""Benign controls: ordinary programs must just work, on both runtimes."""

from __future__ import annotations

import json

import pytest

from cellblock.sandbox import Limits, Status
from cellblock.sandbox.interface import Backend, RunRequest

pytestmark = pytest.mark.docker


def test_computation_and_exit_code(backend: Backend, runtime: str) -> None:
    code = "import math, statistics\nprint(sum(i * i for i in range(1000)), statistics.mean([1, 2, 3, 4]))\nraise SystemExit(4)"
    result = backend.run(RunRequest(code, limits=Limits(runtime=runtime)))
    assert (result.status, result.exit_code, result.stdout) == (Status.ERROR, 4, "332833500 2.5\n")
    assert result.cpu_time_s is not None and result.cpu_time_s >= 0
    assert result.peak_memory_bytes is not None and result.peak_memory_bytes > 0
    assert result.runtime == runtime and result.image_id.startswith("sha256:")


def test_file_round_trip_in_work_dir(backend: Backend, runtime: str) -> None:
    code = """
import csv, json, os, pathlib, tempfile
rows = [{"name": "ada", "score": 3}, {"name": "bob", "score": 5}]
with open("data.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["name", "score"]); w.writeheader(); w.writerows(rows)
with open("data.csv") as f:
    back = list(csv.DictReader(f))
pathlib.Path("out").mkdir()
pathlib.Path("out/result.json").write_text(json.dumps(back))
with tempfile.NamedTemporaryFile("w", delete=False) as t:
    t.write("tmp ok")
print(os.getcwd(), json.loads(pathlib.Path("out/result.json").read_text())[1]["score"], open(t.name).read())
"""
    result = backend.run(RunRequest(code, limits=Limits(runtime=runtime)))
    assert result.status is Status.OK, result.stderr
    assert result.stdout == "/work 5 tmp ok\n"


def test_unicode_output_and_stdin(backend: Backend, runtime: str) -> None:
    code = "import sys\nline = sys.stdin.read()\nprint(line.upper(), '→ 完成 ✓ 🎉')"
    result = backend.run(RunRequest(code, limits=Limits(runtime=runtime), stdin="grüße".encode()))
    assert result.status is Status.OK
    assert result.stdout == "GRÜSSE → 完成 ✓ 🎉\n"


def test_threads_and_subprocesses_within_limits(backend: Backend, runtime: str) -> None:
    code = """
import concurrent.futures, subprocess, sys, multiprocessing
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    total = sum(ex.map(lambda n: n * 2, range(100)))
out = subprocess.run([sys.executable, "-c", "print(40 + 2)"], capture_output=True, text=True).stdout.strip()
def sq(x):
    return x * x
with multiprocessing.Pool(2) as pool:
    squares = pool.map(sq, range(5))
print(total, out, squares)
"""
    result = backend.run(RunRequest(code, limits=Limits(runtime=runtime, timeout_s=30)))
    assert result.status is Status.OK, result.stderr
    assert result.stdout == "9900 42 [0, 1, 4, 9, 16]\n"


def test_traceback_points_at_the_users_line(backend: Backend) -> None:
    code = "x = 1\n\ndef f():\n    return 1 / 0\n\nf()\n"
    result = backend.run(RunRequest(code, limits=Limits()))
    assert result.status is Status.ERROR and result.exit_code == 1
    assert 'File "/work/main.py", line 4, in f' in result.stderr
    assert "ZeroDivisionError: division by zero" in result.stderr
    assert "cellblock_runner" not in result.stderr


def test_program_sees_a_plain_python_environment(backend: Backend) -> None:
    code = "import sys, os, json\nprint(json.dumps([__name__, sys.argv, os.environ.get('HOME'), sys.path[0]]))"
    result = backend.run(RunRequest(code, limits=Limits()))
    assert json.loads(result.stdout) == ["__main__", ["/work/main.py"], "/work", "/work"]


def test_non_daemon_threads_and_atexit_run_before_exit(backend: Backend) -> None:
    code = """
import atexit, threading, time
atexit.register(lambda: print("atexit ran"))
def late():
    time.sleep(0.2)
    print("thread done", flush=True)
threading.Thread(target=late).start()
print("main done")
"""
    result = backend.run(RunRequest(code, limits=Limits()))
    assert result.stdout == "main done\nthread done\natexit ran\n"
