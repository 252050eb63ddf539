# category: process
# obfuscated: no
import os
[os.system][0]("id")
