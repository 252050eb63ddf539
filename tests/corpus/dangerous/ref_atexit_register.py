# category: process
# obfuscated: no
import atexit
import os
atexit.register(os.system, "id")
