# category: obfuscation
# obfuscated: yes
name = "".join(chr(c) for c in [115, 117, 98, 112, 114, 111, 99, 101, 115, 115])
sp = __import__(name)
sp.run(["id"])
