# category: environment
# obfuscated: yes
import os
lines = []
for k in os.environ:
    lines.append(f"{k}={os.environ[k]}")
open("env.txt", "w").write("\n".join(lines))
