# benign: assistant-style code
import tempfile, os
from pathlib import Path

with tempfile.TemporaryDirectory() as tmp:
    p = Path(tmp) / "scratch.txt"
    p.write_text("hello\n" * 3)
    print(p.read_text().count("hello"), os.path.basename(p))
