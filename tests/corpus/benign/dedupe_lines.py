# benign: assistant-style code
seen = set()
with open("emails.txt") as src, open("emails_unique.txt", "w") as dst:
    for line in src:
        key = line.strip().lower()
        if key and key not in seen:
            seen.add(key)
            dst.write(key + "\n")
print(len(seen), "unique")
