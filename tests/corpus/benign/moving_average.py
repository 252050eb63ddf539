# benign: assistant-style code
from collections import deque

def moving_average(values, window=3):
    buf = deque(maxlen=window)
    out = []
    for v in values:
        buf.append(v)
        out.append(sum(buf) / len(buf))
    return out

print(moving_average([1, 2, 3, 4, 5, 6, 7], 3))
