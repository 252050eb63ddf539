# benign: assistant-style code
from pathlib import Path

lines = Path("README.md").read_text().splitlines()
headings = [l.lstrip("#").strip() for l in lines if l.startswith("#")]
toc = "\n".join(f"- [{h}](#{h.lower().replace(' ', '-')})" for h in headings)
Path("TOC.md").write_text(toc + "\n")
