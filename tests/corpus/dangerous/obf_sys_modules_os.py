# category: obfuscation
# obfuscated: yes
import sys
sys.modules["o" + "s"].system("id")
