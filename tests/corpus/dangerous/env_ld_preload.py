# category: environment
# obfuscated: no
import os
os.environ["LD_PRELOAD"] = "/tmp/libevil.so"
os.system("ls")
