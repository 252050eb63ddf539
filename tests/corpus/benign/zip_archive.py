# benign: assistant-style code
import zipfile
from pathlib import Path

with zipfile.ZipFile("reports.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
    for p in Path("reports").glob("*.txt"):
        zf.write(p, arcname=p.name)
print("archived")
