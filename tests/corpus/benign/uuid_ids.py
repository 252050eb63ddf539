# benign: assistant-style code
import uuid, json

records = [{"id": str(uuid.uuid4()), "value": i * i} for i in range(5)]
with open("records.json", "w") as fh:
    json.dump(records, fh, indent=1)
print(records[0]["id"])
