# benign: assistant-style code
import base64
from pathlib import Path

data = Path("logo.png").read_bytes()
encoded = base64.b64encode(data).decode("ascii")
html = f'<img src="data:image/png;base64,{encoded}">'
Path("logo.html").write_text(html)
decoded = base64.b64decode(encoded)
assert decoded == data
