# benign: assistant-style code
import os
from pathlib import Path

data_dir = Path(os.environ.get("DATA_DIR", "."))
verbose = os.getenv("VERBOSE", "0") == "1"
files = list(data_dir.glob("*.json"))
if verbose:
    print(f"found {len(files)} files in {data_dir}")
