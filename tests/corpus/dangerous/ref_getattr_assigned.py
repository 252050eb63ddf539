# category: obfuscation
# obfuscated: yes
import os
g = getattr(os, "system")
g("id")
