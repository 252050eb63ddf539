# category: dynamic-code
# obfuscated: yes
b = globals()["__builtins__"]
e = getattr(b, "eval")
e("__import__('os').getcwd()")
