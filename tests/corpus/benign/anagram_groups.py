# benign: assistant-style code
from collections import defaultdict

words = ["listen", "silent", "enlist", "google", "gooegl", "cat", "act", "tac"]
groups = defaultdict(list)
for w in words:
    groups["".join(sorted(w))].append(w)
print([g for g in groups.values() if len(g) > 1])
