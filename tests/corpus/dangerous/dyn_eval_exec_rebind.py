# category: dynamic-code
# obfuscated: no
# exec rebinds x behind the analysis, so the eval below does not run the literal.
x = "1"
exec("x = input()")
print(eval(x))
