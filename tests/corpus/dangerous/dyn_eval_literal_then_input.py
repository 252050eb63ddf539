# category: dynamic-code
# obfuscated: no
# A harmless literal first, then whatever the user types: the literal must not vouch for it.
expr = "1 + 1"
expr = input("expression: ")
print(eval(expr))
