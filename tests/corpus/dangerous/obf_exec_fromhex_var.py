# category: dynamic-code
# obfuscated: yes
data = bytes.fromhex("7072696e7428275c78363927293b696d706f7274206f73")
text = data.decode("utf-8")
exec(text)
