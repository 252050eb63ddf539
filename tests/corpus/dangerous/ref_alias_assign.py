# category: process
# obfuscated: no
import os
f = os.system
f("id")
