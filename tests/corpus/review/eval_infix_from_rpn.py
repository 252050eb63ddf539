# category: dynamic-code
# obfuscated: no
# Program-built eval: an RPN program turned into infix text, then checked with eval.
PROGRAM = [3, 4, "+", 2, "*", 7, "-"]


def to_infix(tokens):
    stack = []
    for tok in tokens:
        if tok in ("+", "-", "*", "/"):
            right = stack.pop()
            left = stack.pop()
            stack.append(f"({left} {tok} {right})")
        else:
            stack.append(str(tok))
    return stack[0]


infix = to_infix(PROGRAM)
print(infix, "=", eval(infix))
