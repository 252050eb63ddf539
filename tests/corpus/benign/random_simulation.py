# benign: assistant-style code
import random

random.seed(42)
trials = 100_000
hits = sum(1 for _ in range(trials) if random.random() ** 2 + random.random() ** 2 <= 1)
print("pi is about", 4 * hits / trials)
