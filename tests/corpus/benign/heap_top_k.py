# benign: assistant-style code
import heapq

scores = {"a": 55, "b": 91, "c": 78, "d": 99, "e": 60, "f": 88}
top3 = heapq.nlargest(3, scores.items(), key=lambda kv: kv[1])
print(top3)
