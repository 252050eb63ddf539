# benign: assistant-style code
import argparse
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("files", nargs="+")
parser.add_argument("-l", "--lines", action="store_true")
args = parser.parse_args()
for name in args.files:
    text = Path(name).read_text(errors="replace")
    print(name, len(text.splitlines()) if args.lines else len(text.split()))
