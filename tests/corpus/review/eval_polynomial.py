# category: dynamic-code
# obfuscated: no
# Program-built eval: a polynomial assembled term by term, evaluated at several points.
def polynomial(coefficients):
    terms = []
    for power, c in enumerate(coefficients):
        terms.append(f"{c} * x ** {power}")
    return " + ".join(terms)


def evaluate(expression, x):
    return eval(expression, {"x": x})


source = polynomial([1, 0, 2, -1])
print("p(x) =", source)
for x in range(4):
    print(x, evaluate(source, x))
