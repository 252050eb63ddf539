# category: dynamic-code
# obfuscated: no
# Program-built eval: named formulas kept as strings in a literal table.
import math

FORMULAS = {
    "area": "w * h",
    "perimeter": "2 * (w + h)",
    "diagonal": "math.sqrt(w ** 2 + h ** 2)",
}
w, h = 3.0, 4.0
for name, formula in FORMULAS.items():
    print(f"{name:>10}: {eval(formula):.2f}")
