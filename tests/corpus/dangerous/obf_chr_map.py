# category: obfuscation
# obfuscated: yes
mod = __import__("".join(map(chr, [111, 115])))
getattr(mod, "".join(map(chr, [115, 121, 115, 116, 101, 109])))("whoami")
