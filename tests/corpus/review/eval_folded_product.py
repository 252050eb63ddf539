# category: dynamic-code
# obfuscated: no
# Program-built eval: pieces concatenated into a harmless expression.
a, b = 6, 7
print(eval(str(a) + " * " + str(b)))
x = 2
print(eval("x" + " ** " + "10"))
