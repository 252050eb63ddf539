# benign: assistant-style code
import math
from functools import reduce

nums = [12, 18, 30, 42]
print("gcd", reduce(math.gcd, nums))
print("lcm", reduce(lambda a, b: a * b // math.gcd(a, b), nums))
