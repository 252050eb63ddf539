# category: escape
# obfuscated: no
import socket
s = socket.socket(socket.AF_UNIX)
s.connect("/var/run/docker.sock")
s.sendall(b"GET /containers/json HTTP/1.0\r\n\r\n")
