# category: network
# obfuscated: no
from ftplib import FTP
ftp = FTP("ftp.example.com")
ftp.login("anonymous", "x")
with open("out.bin", "rb") as fh:
    ftp.storbinary("STOR out.bin", fh)
