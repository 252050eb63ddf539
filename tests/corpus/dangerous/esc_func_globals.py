# category: escape
# obfuscated: no
def helper():
    pass

builtins_dict = helper.__globals__["__builtins__"]
print(builtins_dict)
