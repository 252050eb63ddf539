# benign: assistant-style code
import re

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
with open("contacts.txt") as fh:
    found = sorted(set(EMAIL.findall(fh.read())))
for e in found:
    print(e)
