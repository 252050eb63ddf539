# category: obfuscation
# obfuscated: yes
import os
import random
name = random.choice(["system", "popen"])
getattr(os, name)("id")
