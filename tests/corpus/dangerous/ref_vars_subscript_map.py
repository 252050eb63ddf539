# category: obfuscation
# obfuscated: yes
import os
list(map(vars(os)["sys" + "tem"], ["id"]))
