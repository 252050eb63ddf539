"""A writer subprocess for the concurrency, crash and disk-full tests.

Prints ``<seq> <hash>`` for every acknowledged append, flushing each line, so the parent knows
exactly which records the log promised to keep.
"""

from __future__ import annotations

import resource
import signal
import sys
import threading
from pathlib import Path

from cellblock.audit import AuditLog, AuditWriteError, DirectoryWitness


def main() -> int:
    mode, directory, key, witness = sys.argv[1:5]
    w = DirectoryWitness(Path(witness))
    out = sys.stdout
    if mode == "append":  # argv: n threads tag
        n, threads, tag = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
        lock = threading.Lock()
        with AuditLog.open(
            Path(directory), signing_key=Path(key), witness=w, checkpoint_every=50
        ) as log:

            def run(t: int) -> None:
                for i in range(n):
                    ref = log.append("exec", {"w": f"{tag}.{t}", "i": i}, durable=i % 3 == 0)
                    with lock:
                        out.write(f"{ref.seq} {ref.hash}\n")

            ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        out.flush()
        return 0
    if mode == "crash":  # append durably until killed
        log = AuditLog.open(
            Path(directory), signing_key=Path(key), witness=w, checkpoint_every=7, rotate_bytes=6000
        )
        out.write(f"recoveries {len(log.recoveries)}\n")
        out.flush()
        i = 0
        while True:
            ref = log.append("exec", {"i": i, "pad": "x" * (i % 50)})
            out.write(f"{ref.seq} {ref.hash}\n")
            out.flush()
            i += 1
    if mode == "fsize":  # a file size limit makes write() fail with EFBIG: a full disk
        limit = int(sys.argv[5])
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        log = AuditLog.open(Path(directory), signing_key=Path(key), witness=w, checkpoint_every=20)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        try:
            for i in range(100000):
                ref = log.append("exec", {"i": i, "pad": "y" * 100})
                out.write(f"{ref.seq} {ref.hash}\n")
        except AuditWriteError as exc:
            out.write(f"refused {exc}\n")
        try:
            log.append("exec", {"after": "failure"})
            out.write("accepted-after-failure\n")
        except AuditWriteError as exc:
            out.write(f"refused-again {exc}\n")
        out.flush()
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
