# category: obfuscation
# obfuscated: yes
m = __import__("o" + "s")
m.system("id")
