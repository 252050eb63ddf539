# category: obfuscation
# obfuscated: yes
import importlib
parts = ["sub", "process"]
sp = importlib.import_module("".join(parts))
sp.Popen(["sh", "-c", "id"])
