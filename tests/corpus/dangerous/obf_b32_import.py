# category: obfuscation
# obfuscated: yes
import base64
n = base64.b32decode("N5ZQ====").decode()
getattr(__import__(n), "listdir")("/")
