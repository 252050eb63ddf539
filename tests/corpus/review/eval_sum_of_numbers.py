# category: dynamic-code
# obfuscated: no
# Program-built eval: an arithmetic expression joined from the program's own numbers.
nums = [3, 4, 5, 10]
expr = " + ".join(str(n) for n in nums)
print(expr, "=", eval(expr))
