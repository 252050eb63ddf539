# category: resource
# obfuscated: no
x = 9 ** 9 ** 9
print(x % 10)
