# category: process
# obfuscated: no
import os
run = lambda: os.system
run()("id")
