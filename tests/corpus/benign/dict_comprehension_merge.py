# benign: assistant-style code
a = {"x": 1, "y": 2}
b = {"y": 3, "z": 4}
merged = {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}
print(dict(sorted(merged.items())))
inverted = {v: k for k, v in merged.items()}
print(inverted)
