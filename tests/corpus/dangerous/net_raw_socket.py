# category: network
# obfuscated: no
import socket
sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
while True:
    frame, _ = sniffer.recvfrom(65535)
    print(frame[:14].hex())
