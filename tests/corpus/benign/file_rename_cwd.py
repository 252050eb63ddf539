# benign: assistant-style code
from pathlib import Path

for i, p in enumerate(sorted(Path("photos").glob("*.jpg")), start=1):
    target = p.with_name(f"holiday_{i:03d}.jpg")
    if not target.exists():
        p.rename(target)
        print(p.name, "->", target.name)
