# benign: assistant-style code
import json

errors = 0
with open("events.jsonl") as fh, open("clicks.jsonl", "w") as out:
    for line in fh:
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            errors += 1
            continue
        if ev.get("type") == "click":
            out.write(json.dumps(ev) + "\n")
print("bad lines:", errors)
