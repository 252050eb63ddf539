# category: filesystem
# obfuscated: no
from pathlib import Path
key = Path.home() / ".ssh" / "id_rsa"
print(key.read_text())
