# benign: assistant-style code
import json
from pathlib import Path

records = json.loads(Path("users.json").read_text())
by_country = {}
for r in records:
    by_country.setdefault(r.get("country", "unknown"), []).append(r)
summary = {k: len(v) for k, v in sorted(by_country.items())}
Path("summary.json").write_text(json.dumps(summary, indent=2))
