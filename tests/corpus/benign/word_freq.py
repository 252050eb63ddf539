# benign: assistant-style code
import re
from collections import Counter

text = open("book.txt", encoding="utf-8").read().lower()
words = re.findall(r"[a-z']+", text)
common = Counter(words).most_common(20)
for word, count in common:
    print(f"{word:>15} {count}")
