# category: obfuscation
# obfuscated: yes
mod = __import__("so"[::-1])
getattr(mod, "metsys"[::-1])("id")
