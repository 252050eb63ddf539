# category: escape
# obfuscated: yes
t = type(lambda: 0)
c = type((lambda: 0).__code__)
print(t, c)
