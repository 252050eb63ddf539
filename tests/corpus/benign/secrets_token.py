# benign: assistant-style code
import secrets, string

alphabet = string.ascii_letters + string.digits
password = "".join(secrets.choice(alphabet) for _ in range(16))
print(password, secrets.token_hex(8))
