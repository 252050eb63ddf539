# category: dynamic-code
# obfuscated: no
# The evaluated strings name a module alias the program imported.
import os as o

for call in ["o.getcwd", "o.listdir"]:
    print(eval(call + "()"))
