# benign: assistant-style code
import csv, json

with open("people.csv", newline="", encoding="utf-8") as src:
    people = list(csv.DictReader(src))
for p in people:
    p["age"] = int(p["age"])
with open("people.json", "w", encoding="utf-8") as dst:
    json.dump(people, dst, ensure_ascii=False, indent=2)
