# benign: assistant-style code
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

def count_lines(p: Path) -> tuple[str, int]:
    return p.name, sum(1 for _ in p.open(errors="replace"))

files = sorted(Path(".").glob("*.txt"))
with ThreadPoolExecutor(max_workers=4) as pool:
    for name, n in pool.map(count_lines, files):
        print(name, n)
