# benign: assistant-style code
from collections import Counter

rolls = [3, 5, 2, 6, 6, 1, 4, 3, 3, 5, 2, 6]
counts = Counter(rolls)
for face in range(1, 7):
    print(f"{face}: {'#' * counts[face]}")
