# category: process
# obfuscated: no
import os, sys
# re-exec ourselves under bash
os.execv("/bin/bash", ["bash", "-c", "id; cat /etc/passwd"])
