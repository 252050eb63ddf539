# category: network
# obfuscated: no
import smtplib
from email.message import EmailMessage

msg = EmailMessage()
msg["Subject"] = "report"
msg.set_content(open("notes.txt").read())
with smtplib.SMTP("mail.example.org", 25) as server:
    server.send_message(msg, "a@example.org", ["b@example.org"])
