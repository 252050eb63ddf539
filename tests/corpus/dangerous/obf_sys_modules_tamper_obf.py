# category: escape
# obfuscated: yes
import sys
key = "sub" + "process"
sys.modules[key] = type(sys)("shim")
