# category: obfuscation
# obfuscated: yes
a, b = "o", "s"
mod = __import__(f"{a}{b}")
mod.system("ls /")
