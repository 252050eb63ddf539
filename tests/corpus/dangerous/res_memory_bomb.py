# category: resource
# obfuscated: no
blocks = []
while True:
    blocks.append(bytearray(10 * 1024 * 1024))
