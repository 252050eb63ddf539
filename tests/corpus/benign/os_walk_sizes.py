# benign: assistant-style code
import os

total = 0
for root, dirs, files in os.walk("."):
    dirs[:] = [d for d in dirs if not d.startswith(".")]
    for name in files:
        total += os.path.getsize(os.path.join(root, name))
print(f"{total / 1024:.1f} KiB in the project")
