# category: escape
# obfuscated: no
for cls in object.__subclasses__():
    if cls.__name__ == "Popen":
        cls(["id"])
