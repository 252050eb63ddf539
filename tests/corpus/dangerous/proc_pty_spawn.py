# category: process
# obfuscated: no
import pty
pty.spawn("/bin/sh")
