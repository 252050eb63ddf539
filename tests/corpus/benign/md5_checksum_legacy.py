# benign: assistant-style code
import hashlib

with open("download.iso", "rb") as fh:
    digest = hashlib.md5(fh.read()).hexdigest()
print("md5:", digest)
