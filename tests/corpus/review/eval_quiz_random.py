# category: dynamic-code
# obfuscated: no
# Program-built eval: an arithmetic quiz built from random numbers and a literal operator list.
import random

OPERATORS = ["+", "-", "*"]
random.seed(7)
for _ in range(5):
    a, b = random.randint(1, 9), random.randint(1, 9)
    op = random.choice(OPERATORS)
    question = f"{a} {op} {b}"
    print(question, "=", eval(question))
