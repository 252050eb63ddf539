# benign: assistant-style code
import re
from collections import defaultdict

pattern = re.compile(r"^(\S+) \S+ \S+ \[(.*?)\] \"(\w+) (\S+)[^\"]*\" (\d{3})")
status = defaultdict(int)
with open("access.log") as fh:
    for line in fh:
        m = pattern.match(line)
        if m:
            status[m.group(5)] += 1
for code, n in sorted(status.items()):
    print(code, n)
