# category: process
# obfuscated: no
from os import *
list(map(popen, ["id"]))
