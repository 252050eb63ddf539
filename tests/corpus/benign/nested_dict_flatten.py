# benign: assistant-style code
def flatten(d, parent="", sep="."):
    out = {}
    for k, v in d.items():
        key = f"{parent}{sep}{k}" if parent else k
        if isinstance(v, dict):
            out.update(flatten(v, key, sep))
        else:
            out[key] = v
    return out

print(flatten({"a": 1, "b": {"c": 2, "d": {"e": 3}}}))
