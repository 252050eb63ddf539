# category: dynamic-code
# obfuscated: no
# An evaluated assignment expression rebinds x, so the second eval does not run the literal.
x = "1"
eval("(x := input())")
print(eval(x))
