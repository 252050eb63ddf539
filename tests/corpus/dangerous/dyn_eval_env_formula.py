# category: dynamic-code
# obfuscated: no
import os

formula = os.environ.get("FORMULA", "1 + 1")
print(eval(formula))
