# benign: assistant-style code
import csv
from pathlib import Path

def clean_row(row):
    return {k.strip().lower(): v.strip() for k, v in row.items()}

rows = []
with open("sales.csv", newline="") as fh:
    for row in csv.DictReader(fh):
        row = clean_row(row)
        if row.get("amount"):
            row["amount"] = float(row["amount"].replace(",", ""))
            rows.append(row)

with open("sales_clean.csv", "w", newline="") as fh:
    writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
print(f"kept {len(rows)} rows")
