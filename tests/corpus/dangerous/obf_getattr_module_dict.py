# category: obfuscation
# obfuscated: yes
import os
os.__dict__["sys" + "tem"]("id")
