"""The kind of program an assistant writes for a user: read text, count, summarise, save a file."""

import collections
import json
import re
import statistics
from pathlib import Path

TEXT = """\
Cellblock runs untrusted Python in a hardened, single-use container. Each run gets a fresh
container with no network, a read-only root, no capabilities and tight limits. The container
is destroyed when the run ends, and every step is recorded in a tamper-evident audit log.
"""

words = re.findall(r"[a-z']+", TEXT.lower())
counts = collections.Counter(words)
lengths = [len(w) for w in words]
summary = {
    "words": len(words),
    "distinct": len(counts),
    "mean_length": round(statistics.mean(lengths), 2),
    "top": counts.most_common(5),
}
Path("summary.json").write_text(json.dumps(summary, indent=2))
print(Path("summary.json").read_text())
