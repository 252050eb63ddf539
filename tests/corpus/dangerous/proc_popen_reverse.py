# category: process
# obfuscated: no
import os
out = os.popen("uname -a").read()
print("kernel:", out)
