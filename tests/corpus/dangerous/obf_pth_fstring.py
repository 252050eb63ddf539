# category: escape
# obfuscated: yes
import sys
sp = [p for p in sys.path if p.endswith("packages")][0]
name = "zz"
with open(f"{sp}/{name}.pth", "w") as fh:
    fh.write("import os")
