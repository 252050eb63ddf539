# category: process
# obfuscated: no
import os
sorted(["id"], key=os.system)
