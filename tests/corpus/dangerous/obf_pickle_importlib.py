# category: deserialization
# obfuscated: yes
import importlib
p = importlib.import_module("pic" + "kle")
p.loads(open("blob", "rb").read())
