# category: process
# obfuscated: no
import os
@os.system
def cmd():
    pass
