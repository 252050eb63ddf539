# category: dynamic-code
# obfuscated: yes
ex = __builtins__.__dict__["ex" + "ec"] if hasattr(__builtins__, "__dict__") else __builtins__["exec"]
ex("print(open('/etc/passwd').read())")
