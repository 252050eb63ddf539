# benign: assistant-style code
from fractions import Fraction

terms = [Fraction(1, n * (n + 1)) for n in range(1, 20)]
print(sum(terms))
print(float(sum(terms)))
