# category: environment
# obfuscated: no
import os
os.setuid(0)
print(os.getuid())
