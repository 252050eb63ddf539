# category: obfuscation
# obfuscated: yes
import sys, os
m = sys.modules.get("os")
getattr(m, "sys" + "tem")("uname -a")
