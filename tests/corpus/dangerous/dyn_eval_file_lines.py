# category: dynamic-code
# obfuscated: no
with open("expressions.txt") as fh:
    lines = fh.readlines()
for line in lines:
    print(line.strip(), "=", eval(line))
