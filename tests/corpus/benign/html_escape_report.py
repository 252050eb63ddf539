# benign: assistant-style code
import html

rows = [("<b>bold</b>", 3), ("a & b", 5)]
body = "".join(f"<tr><td>{html.escape(n)}</td><td>{v}</td></tr>" for n, v in rows)
with open("report.html", "w") as fh:
    fh.write(f"<table>{body}</table>")
