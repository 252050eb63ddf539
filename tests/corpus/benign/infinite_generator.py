# benign: assistant-style code
from itertools import islice

def primes():
    found = []
    n = 2
    while True:
        if all(n % p for p in found):
            found.append(n)
            yield n
        n += 1

print(list(islice(primes(), 15)))
