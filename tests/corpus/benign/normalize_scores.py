# benign: assistant-style code
import math

scores = {"alice": 88, "bob": 72, "carol": 95, "dan": 60}
mean = sum(scores.values()) / len(scores)
sd = math.sqrt(sum((v - mean) ** 2 for v in scores.values()) / len(scores))
z = {k: round((v - mean) / sd, 2) for k, v in scores.items()}
print(z)
