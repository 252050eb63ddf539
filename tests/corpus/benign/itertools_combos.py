# benign: assistant-style code
from itertools import combinations, permutations, product

items = ["a", "b", "c", "d"]
print(list(combinations(items, 2)))
print(len(list(permutations(items))))
for x, y in product(range(3), repeat=2):
    print(x, y, end="; ")
