# benign: assistant-style code
import time

def slow_sum(n):
    total = 0
    for i in range(n):
        total += i
    return total

start = time.perf_counter()
slow_sum(1_000_000)
t1 = time.perf_counter() - start
start = time.perf_counter()
sum(range(1_000_000))
t2 = time.perf_counter() - start
print(f"loop {t1:.4f}s builtin {t2:.4f}s")
