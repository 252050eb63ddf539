# category: dynamic-code
# obfuscated: no
expr = input("expression: ")
print("result:", eval(expr))
