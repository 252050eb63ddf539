# category: dynamic-code
# obfuscated: yes
import base64

def unpack(s):
    return base64.b64decode(s).decode()

blob = input("code: ")
exec(unpack(blob))
