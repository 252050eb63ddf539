# category: process
# obfuscated: no
import os

def list_home():
    # show what is in the home directory
    os.system("ls -la ~")

list_home()
