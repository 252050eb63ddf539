# benign: assistant-style code
from itertools import groupby

def rle(s: str) -> str:
    return "".join(f"{len(list(g))}{ch}" for ch, g in groupby(s))

def unrle(s: str) -> str:
    import re
    return "".join(ch * int(n) for n, ch in re.findall(r"(\d+)(\D)", s))

enc = rle("aaabccddddd")
print(enc, unrle(enc))
