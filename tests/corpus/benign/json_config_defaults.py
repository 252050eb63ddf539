# benign: assistant-style code
import json
from pathlib import Path

DEFAULTS = {"theme": "light", "font_size": 12, "recent": []}
path = Path("settings.json")
settings = {**DEFAULTS, **(json.loads(path.read_text()) if path.exists() else {})}
settings["font_size"] = max(8, min(32, int(settings["font_size"])))
path.write_text(json.dumps(settings, indent=2))
