# benign: assistant-style code
import hashlib
from pathlib import Path

def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(65536), b""):
            h.update(chunk)
    return h.hexdigest()

for p in sorted(Path(".").glob("*.csv")):
    print(digest(p), p.name)
