# category: dynamic-code
# obfuscated: no
# Pieces that join into a dangerous builtin: "op" + "en" makes open(0), the program's stdin.
import random

parts = ["op", "en"]
name = "".join(random.sample(parts, 2))
print(eval(name + "(0).read()"))
