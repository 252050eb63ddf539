# category: process
# obfuscated: no
from subprocess import getoutput
def pick():
    return getoutput
print(pick()("id"))
