"""16 threads and 4 processes appending at once; SIGKILL crash injection; full disk."""

from __future__ import annotations

import gzip
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cellblock.audit import AuditWriteError
from cellblock.audit._format import SEG_RE

from ._util import Env, read_lines, rec_of

WRITER = str(Path(__file__).with_name("_writer_proc.py"))


def _spawn(env: Env, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            WRITER,
            args[0],
            str(env.log_dir),
            str(env.priv),
            str(env.witness.path),
            *args[1:],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _all_lines(env: Env) -> list[bytes]:
    out: list[bytes] = []
    for p in sorted(env.log_dir.iterdir()):
        if not SEG_RE.match(p.name) or p.name.endswith(".manifest.json"):
            continue
        data = gzip.decompress(p.read_bytes()) if p.name.endswith(".gz") else p.read_bytes()
        out += data.splitlines(keepends=True)
    return out


def _all_records(env: Env) -> list[dict[str, object]]:
    return [rec_of(line) for line in _all_lines(env)]


@pytest.mark.timeout(120)
def test_16_threads_and_4_processes(env: Env) -> None:
    env.fill(1)  # create the log first so every writer joins the same chain
    per_thread, procs_n, proc_threads = 60, 4, 4
    procs = [
        _spawn(env, "append", str(per_thread), str(proc_threads), f"p{k}") for k in range(procs_n)
    ]
    acked: list[tuple[int, str]] = []
    lock = threading.Lock()
    with env.open(checkpoint_every=50, rotate_bytes=40_000) as log:

        def run(t: int) -> None:
            for i in range(per_thread):
                ref = log.append("exec", {"w": f"main.{t}", "i": i}, durable=i % 2 == 0)
                with lock:
                    acked.append((ref.seq, ref.hash))

        threads = [threading.Thread(target=run, args=(t,)) for t in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for p in procs:
            out, err = p.communicate(timeout=100)
            assert p.returncode == 0, err
            acked += [(int(a), b) for a, b in (line.split() for line in out.splitlines())]
    rep = env.verify()
    assert rep.ok, rep.problems
    recs = _all_records(env)
    seqs = [r["seq"] for r in recs]
    assert seqs == list(range(len(recs))), "gap or fork in seq"
    user = [
        (r["payload"]["w"], r["payload"]["i"])
        for r in recs  # type: ignore[index]
        if r["type"] == "exec" and "w" in r["payload"]
    ]  # type: ignore[operator]
    expected = 16 * per_thread + procs_n * proc_threads * per_thread
    assert len(user) == len(set(user)) == expected
    assert len({s for s, _ in acked}) == len(acked) == expected  # no seq handed out twice


@pytest.mark.timeout(150)
def test_sigkill_crash_injection(env: Env) -> None:
    env.fill(1)
    rng = random.Random(int(os.environ.get("AUDIT_CRASH_SEED", "7")))
    acked: dict[int, str] = {}
    torn_injected = 0
    for round_ in range(30):
        p = _spawn(env, "crash")
        assert p.stdout is not None
        first = p.stdout.readline()
        assert first.startswith("recoveries"), p.stderr.read() if p.stderr else ""
        ack = p.stdout.readline().split()  # at least one ack per round, even on a slow machine
        acked[int(ack[0])] = ack[1]
        time.sleep(rng.uniform(0.005, 0.12))
        p.send_signal(signal.SIGKILL)
        out, _ = p.communicate()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit():  # a torn last line is not an ack
                acked[int(parts[0])] = parts[1]
        if round_ % 3 == 0:
            # Also tear the tail as a power cut would: half a record after the last newline.
            live = env.live()
            with live.open("ab") as fh:
                fh.write(read_lines(live)[-1][: rng.randint(1, 60)])
            torn_injected += 1
    with env.open() as log:
        log.append("exec", {"after": "crashes"})
    rep = env.verify()
    assert rep.ok, rep.problems
    by_seq = {rec_of(ln)["seq"]: ln[9:73].decode() for ln in _all_lines(env)}
    assert len(acked) > 30
    lost = [s for s, h in acked.items() if by_seq.get(s) != h]
    assert not lost, f"acknowledged records lost or changed: {lost[:10]}"
    recovered = [w for w in rep.warnings if w.kind == "recovered"]
    assert len(recovered) >= torn_injected
    assert not [p for p in env.log_dir.iterdir() if ".tmp" in p.name]


def test_full_disk_refuses_append_and_log_still_verifies(env: Env) -> None:
    env.fill(3)
    size = sum(p.stat().st_size for p in env.log_dir.glob("seg-*.jsonl"))
    p = _spawn(env, "fsize", str(size + 6000))
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    lines = out.splitlines()
    refused = [line for line in lines if line.startswith("refused ")]
    assert refused and "file size limit" in refused[0] and "must not run" in refused[0]
    assert lines[-1].startswith("refused-again")
    acked = [line.split() for line in lines if line[:1].isdigit()]
    assert acked
    rep = env.verify()
    assert rep.ok, rep.problems
    by_seq = {rec_of(ln)["seq"]: ln[9:73].decode() for ln in read_lines(env.live())}
    assert all(by_seq.get(int(s)) == h for s, h in acked)
    with env.open() as log:  # once space is back the log carries on
        log.append("exec", {"space": "back"})
    assert env.verify().ok


def test_lock_timeout_is_a_write_error(env: Env) -> None:
    import fcntl

    env.fill(1)
    with env.open(lock_timeout_s=0.2) as log:
        fd = os.open(env.log_dir / "audit.lock", os.O_RDWR)
        try:
            # Another open file description: flock conflicts even within one process.
            fcntl.flock(fd, fcntl.LOCK_EX)
            with pytest.raises(AuditWriteError, match="held by another writer"):
                log.append("exec", {"x": 1})
        finally:
            os.close(fd)
        log.append("exec", {"x": 2})
    assert env.verify().ok
