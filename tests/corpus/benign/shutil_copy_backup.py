# benign: assistant-style code
import shutil
from datetime import datetime
from pathlib import Path

src = Path("data.csv")
backup_dir = Path("backups")
backup_dir.mkdir(exist_ok=True)
stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
shutil.copy2(src, backup_dir / f"data-{stamp}.csv")
old = sorted(backup_dir.glob("data-*.csv"))[:-5]
for p in old:
    p.unlink()
