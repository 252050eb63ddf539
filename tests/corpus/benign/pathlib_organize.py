# benign: assistant-style code
from pathlib import Path

EXT = {".jpg": "images", ".png": "images", ".pdf": "docs", ".txt": "docs", ".csv": "data"}
for p in Path("downloads").iterdir():
    if p.is_file():
        folder = Path("downloads") / EXT.get(p.suffix.lower(), "other")
        folder.mkdir(exist_ok=True)
        p.replace(folder / p.name)
