# category: resource
# obfuscated: no
data = "x" * (10 ** 11)
print(len(data))
